//! The label grammar: parsing and printing `SECURITY LABEL FOR privacy` text.
//!
//! ```text
//! label   := clause+
//! clause  := PURPOSE name {, name} | CATEGORY name | SUBJECT | ANONYMIZE method
//! method  := NULL | PSEUDONYMIZE | EMAIL | TRUNCATE {day|month|year}
//!          | CONSTANT 'literal' | FUNCTION schema.func
//! label   := NOT PERSONAL     -- alone: the column holds no personal data
//! ```
//! Keywords are case-insensitive, clauses come in any order, each at most
//! once. `NOT PERSONAL` is a label of its own (it takes no other clause): it
//! records that a column whose name looks personal (`privacy.lint()`,
//! `privacy.require_tags`) was reviewed and holds no personal data; every
//! reader of tags ignores such a column. Names are SQL identifiers: unquoted ones are folded to lower case,
//! double-quoted ones are kept as written. String literals use SQL quoting
//! (`'it''s'`). This module is pure Rust (no PostgreSQL calls) so it is unit
//! tested with plain `#[test]`s; catalog checks live in `provider`.

use std::fmt;

/// Longest label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TruncateUnit {
    Day,
    Month,
    Year,
}

impl TruncateUnit {
    pub fn as_str(&self) -> &'static str {
        match self {
            TruncateUnit::Day => "day",
            TruncateUnit::Month => "month",
            TruncateUnit::Year => "year",
        }
    }
}

/// How a column is anonymized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Null,
    Pseudonymize,
    Email,
    Truncate(TruncateUnit),
    Constant(String),
    Function { schema: String, name: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Label {
    pub purposes: Vec<String>,
    pub category: Option<String>,
    pub subject: bool,
    pub anonymize: Option<Method>,
    /// `NOT PERSONAL`: reviewed, no personal data (no other clause)
    pub not_personal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    pub message: String,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, as written.
    Word(String),
    /// A double-quoted identifier, unescaped.
    QuotedIdent(String),
    /// A single-quoted string literal, unescaped.
    Literal(String),
    Comma,
    Dot,
}

impl Tok {
    fn shown(&self) -> String {
        let s = match self {
            Tok::Word(w) => w.clone(),
            Tok::QuotedIdent(w) => format!("\"{w}\""),
            Tok::Literal(l) => format!("'{l}'"),
            Tok::Comma => ",".into(),
            Tok::Dot => ".".into(),
        };
        shorten(&s)
    }

    fn keyword(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

fn err(message: String) -> LabelError {
    LabelError { message }
}

fn tokenize(input: &str) -> Result<Vec<Tok>, LabelError> {
    let mut toks = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(_, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == ',' {
            chars.next();
            toks.push(Tok::Comma);
        } else if c == '.' {
            chars.next();
            toks.push(Tok::Dot);
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => {
                        let what = if c == '\'' {
                            "string literal"
                        } else {
                            "quoted identifier"
                        };
                        return Err(err(format!(
                            "invalid privacy label: unterminated {what} {}",
                            shorten(&format!("{c}{s}"))
                        )));
                    }
                    Some((_, q)) if q == c => {
                        if matches!(chars.peek(), Some(&(_, n)) if n == c) {
                            chars.next();
                            s.push(c);
                        } else {
                            break;
                        }
                    }
                    Some((_, other)) => s.push(other),
                }
            }
            if c == '\'' {
                toks.push(Tok::Literal(s));
            } else {
                if s.is_empty() {
                    return Err(err(
                        "invalid privacy label: zero-length quoted identifier \"\"".into(),
                    ));
                }
                toks.push(Tok::QuotedIdent(s));
            }
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut w = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' || d == '$' {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            toks.push(Tok::Word(w));
        } else {
            return Err(err(format!(
                "invalid privacy label: unexpected character \"{c}\""
            )));
        }
    }
    Ok(toks)
}

/// A plain SQL identifier: ASCII letter or underscore, then letters, digits,
/// underscores or dollars.
fn is_plain_ident(w: &str) -> bool {
    let mut cs = w.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Words that cannot be purpose or category names. `NOT` and `PERSONAL` are
/// not among them: they only mean something where a clause starts, so
/// purposes named `personal` (defined before `NOT PERSONAL` existed) still
/// parse.
const KEYWORDS: &[&str] = &["PURPOSE", "CATEGORY", "SUBJECT", "ANONYMIZE"];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// A purpose or category name (lower-cased identifier).
    fn name(&mut self, after: &str) -> Result<String, LabelError> {
        match self.next() {
            Some(Tok::Word(w)) if is_plain_ident(&w) => {
                let upper = w.to_ascii_uppercase();
                if KEYWORDS.contains(&upper.as_str()) {
                    Err(err(format!("invalid privacy label: expected a name after {after}, found keyword \"{w}\"")))
                } else {
                    Ok(w.to_ascii_lowercase())
                }
            }
            Some(Tok::Word(w)) => Err(err(format!(
                "invalid privacy label: \"{}\" is not a valid name after {after}",
                shorten(&w)
            ))),
            Some(t) => Err(err(format!(
                "invalid privacy label: expected a name after {after}, found \"{}\"",
                t.shown()
            ))),
            None => Err(err(format!(
                "invalid privacy label: expected a name after {after}, found end of label"
            ))),
        }
    }

    /// An SQL identifier for FUNCTION schema.func (quoted kept, unquoted folded).
    fn ident(&mut self, after: &str) -> Result<String, LabelError> {
        match self.next() {
            Some(Tok::Word(w)) if is_plain_ident(&w) => Ok(w.to_ascii_lowercase()),
            Some(Tok::QuotedIdent(q)) => Ok(q),
            Some(t) => Err(err(format!(
                "invalid privacy label: expected an identifier after {after}, found \"{}\"",
                t.shown()
            ))),
            None => Err(err(format!(
                "invalid privacy label: expected an identifier after {after}, found end of label"
            ))),
        }
    }

    fn method(&mut self) -> Result<Method, LabelError> {
        let tok = self.next().ok_or_else(|| {
            err("invalid privacy label: expected an anonymization method after ANONYMIZE, found end of label".into())
        })?;
        match tok.keyword().as_deref() {
            Some("NULL") => Ok(Method::Null),
            Some("PSEUDONYMIZE") => Ok(Method::Pseudonymize),
            Some("EMAIL") => Ok(Method::Email),
            Some("TRUNCATE") => {
                let unit = self.next();
                match unit.as_ref().and_then(|t| t.keyword()).as_deref() {
                    Some("DAY") => Ok(Method::Truncate(TruncateUnit::Day)),
                    Some("MONTH") => Ok(Method::Truncate(TruncateUnit::Month)),
                    Some("YEAR") => Ok(Method::Truncate(TruncateUnit::Year)),
                    _ => Err(err(format!(
                        "invalid privacy label: TRUNCATE takes day, month or year, found \"{}\"",
                        unit.map(|t| t.shown())
                            .unwrap_or_else(|| "end of label".into())
                    ))),
                }
            }
            Some("CONSTANT") => match self.next() {
                Some(Tok::Literal(l)) => Ok(Method::Constant(l)),
                other => Err(err(format!(
                    "invalid privacy label: CONSTANT takes a quoted literal, found \"{}\"",
                    other
                        .map(|t| t.shown())
                        .unwrap_or_else(|| "end of label".into())
                ))),
            },
            Some("FUNCTION") => {
                let schema = self.ident("FUNCTION")?;
                match self.next() {
                    Some(Tok::Dot) => {}
                    other => {
                        return Err(err(format!(
                            "invalid privacy label: FUNCTION takes a schema-qualified name (schema.func), found \"{}\"",
                            other.map(|t| t.shown()).unwrap_or_else(|| "end of label".into())
                        )))
                    }
                }
                let name = self.ident("FUNCTION schema.")?;
                Ok(Method::Function { schema, name })
            }
            _ => Err(err(format!(
                "invalid privacy label: unknown anonymization method \"{}\"",
                tok.shown()
            ))),
        }
    }
}

/// Parse the method part alone (what follows `ANONYMIZE`).
pub fn parse_method(input: &str) -> Result<Method, LabelError> {
    let toks = tokenize(input)?;
    let mut p = Parser { toks, pos: 0 };
    let m = p.method()?;
    if let Some(t) = p.peek() {
        return Err(err(format!(
            "invalid anonymization method: unexpected \"{}\" after the method",
            t.shown()
        )));
    }
    Ok(m)
}

/// Parse a whole label.
pub fn parse(input: &str) -> Result<Label, LabelError> {
    if input.len() > MAX_LABEL_LEN {
        return Err(err(format!(
            "invalid privacy label: label is {} bytes long, the maximum is {MAX_LABEL_LEN}",
            input.len()
        )));
    }
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Err(err("invalid privacy label: label is empty".into()));
    }
    let mut p = Parser { toks, pos: 0 };
    let mut label = Label::default();
    let (mut seen_purpose, mut seen_category, mut seen_anonymize) = (false, false, false);
    while let Some(tok) = p.next() {
        let kw = tok.keyword();
        let dup = |seen: bool, name: &str| -> Result<(), LabelError> {
            if seen {
                Err(err(format!(
                    "invalid privacy label: clause {name} appears more than once"
                )))
            } else {
                Ok(())
            }
        };
        match kw.as_deref() {
            Some("PURPOSE") => {
                dup(seen_purpose, "PURPOSE")?;
                seen_purpose = true;
                loop {
                    let n = p.name("PURPOSE")?;
                    if label.purposes.contains(&n) {
                        return Err(err(format!("invalid privacy label: purpose \"{n}\" is listed twice")));
                    }
                    label.purposes.push(n);
                    if p.peek() == Some(&Tok::Comma) {
                        p.next();
                    } else {
                        break;
                    }
                }
            }
            Some("CATEGORY") => {
                dup(seen_category, "CATEGORY")?;
                seen_category = true;
                label.category = Some(p.name("CATEGORY")?);
            }
            Some("SUBJECT") => {
                dup(label.subject, "SUBJECT")?;
                label.subject = true;
            }
            Some("ANONYMIZE") => {
                dup(seen_anonymize, "ANONYMIZE")?;
                seen_anonymize = true;
                label.anonymize = Some(p.method()?);
            }
            Some("NOT") => {
                dup(label.not_personal, "NOT PERSONAL")?;
                match p.next() {
                    Some(t) if t.keyword().as_deref() == Some("PERSONAL") => {}
                    other => {
                        return Err(err(format!(
                            "invalid privacy label: expected PERSONAL after NOT, found \"{}\"",
                            other
                                .map(|t| t.shown())
                                .unwrap_or_else(|| "end of label".into())
                        )))
                    }
                }
                label.not_personal = true;
            }
            _ => {
                return Err(err(format!(
                    "invalid privacy label: unexpected \"{}\", expected PURPOSE, CATEGORY, SUBJECT, ANONYMIZE or NOT PERSONAL",
                    tok.shown()
                )))
            }
        }
    }
    if label.not_personal
        && (!label.purposes.is_empty()
            || label.category.is_some()
            || label.subject
            || label.anonymize.is_some())
    {
        return Err(err(
            "invalid privacy label: NOT PERSONAL cannot be combined with PURPOSE, CATEGORY, SUBJECT or ANONYMIZE".into(),
        ));
    }
    Ok(label)
}

fn quote_ident(s: &str) -> String {
    if is_plain_ident(s) && s == s.to_ascii_lowercase() {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Null => f.write_str("NULL"),
            Method::Pseudonymize => f.write_str("PSEUDONYMIZE"),
            Method::Email => f.write_str("EMAIL"),
            Method::Truncate(u) => write!(f, "TRUNCATE {}", u.as_str()),
            Method::Constant(l) => write!(f, "CONSTANT '{}'", l.replace('\'', "''")),
            Method::Function { schema, name } => {
                write!(f, "FUNCTION {}.{}", quote_ident(schema), quote_ident(name))
            }
        }
    }
}

/// The canonical text of a label; `parse(label.to_string()) == label`.
impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.purposes.is_empty() {
            parts.push(format!("PURPOSE {}", self.purposes.join(", ")));
        }
        if let Some(c) = &self.category {
            parts.push(format!("CATEGORY {c}"));
        }
        if self.subject {
            parts.push("SUBJECT".into());
        }
        if let Some(m) = &self.anonymize {
            parts.push(format!("ANONYMIZE {m}"));
        }
        if self.not_personal {
            parts.push("NOT PERSONAL".into());
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Label {
        parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn bad(s: &str) -> String {
        match parse(s) {
            Ok(l) => panic!("{s:?} should be rejected, got {l:?}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn full_label() {
        let l = ok("PURPOSE marketing, support CATEGORY contact ANONYMIZE EMAIL");
        assert_eq!(l.purposes, vec!["marketing", "support"]);
        assert_eq!(l.category.as_deref(), Some("contact"));
        assert!(!l.subject);
        assert_eq!(l.anonymize, Some(Method::Email));
    }

    #[test]
    fn keywords_case_insensitive_any_order() {
        let l = ok("anonymize truncate MONTH subject Category Web purpose Analytics");
        assert_eq!(l.purposes, vec!["analytics"]);
        assert_eq!(l.category.as_deref(), Some("web"));
        assert!(l.subject);
        assert_eq!(l.anonymize, Some(Method::Truncate(TruncateUnit::Month)));
    }

    #[test]
    fn subject_alone() {
        let l = ok("SUBJECT");
        assert!(l.subject);
        assert!(l.purposes.is_empty());
        assert_eq!(l.to_string(), "SUBJECT");
    }

    #[test]
    fn every_method() {
        assert_eq!(parse_method("null").unwrap(), Method::Null);
        assert_eq!(parse_method("PSEUDONYMIZE").unwrap(), Method::Pseudonymize);
        assert_eq!(parse_method("Email").unwrap(), Method::Email);
        assert_eq!(
            parse_method("TRUNCATE day").unwrap(),
            Method::Truncate(TruncateUnit::Day)
        );
        assert_eq!(
            parse_method("TRUNCATE year").unwrap(),
            Method::Truncate(TruncateUnit::Year)
        );
        assert_eq!(
            parse_method("CONSTANT 'n/a'").unwrap(),
            Method::Constant("n/a".into())
        );
        assert_eq!(
            parse_method("FUNCTION public.mask").unwrap(),
            Method::Function {
                schema: "public".into(),
                name: "mask".into()
            }
        );
        assert_eq!(
            parse_method("FUNCTION \"My Schema\".\"Mask\"").unwrap(),
            Method::Function {
                schema: "My Schema".into(),
                name: "Mask".into()
            }
        );
    }

    #[test]
    fn constant_with_embedded_quotes() {
        let l = ok("ANONYMIZE CONSTANT 'it''s ''redacted''' PURPOSE support");
        assert_eq!(
            l.anonymize,
            Some(Method::Constant("it's 'redacted'".into()))
        );
        // canonical text round-trips
        assert_eq!(ok(&l.to_string()), l);
        assert_eq!(
            l.to_string(),
            "PURPOSE support ANONYMIZE CONSTANT 'it''s ''redacted'''"
        );
    }

    #[test]
    fn constant_may_hold_keywords_and_unicode() {
        let l = ok("ANONYMIZE CONSTANT 'PURPOSE x, SUBJECT ünïcødé ✓'");
        assert_eq!(
            l.anonymize,
            Some(Method::Constant("PURPOSE x, SUBJECT ünïcødé ✓".into()))
        );
        assert!(!l.subject);
        assert!(l.purposes.is_empty());
    }

    #[test]
    fn empty_constant_is_allowed() {
        assert_eq!(
            ok("ANONYMIZE CONSTANT ''").anonymize,
            Some(Method::Constant(String::new()))
        );
    }

    #[test]
    fn roundtrip_canonical() {
        for s in [
            "PURPOSE a",
            "PURPOSE a, b, c CATEGORY x SUBJECT ANONYMIZE NULL",
            "CATEGORY contact ANONYMIZE FUNCTION \"Weird\".f",
            "ANONYMIZE TRUNCATE year",
        ] {
            let l = ok(s);
            assert_eq!(ok(&l.to_string()), l, "{s}");
        }
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(bad("").contains("empty"));
        assert!(bad("   \n\t ").contains("empty"));
        assert!(bad("HELLO").contains("\"HELLO\""));
        assert!(bad("PURPOSE").contains("end of label"));
        assert!(bad("PURPOSE a,").contains("end of label"));
        assert!(bad("PURPOSE a,, b").contains("\",\""));
        assert!(bad("PURPOSE a b").contains("\"b\""));
        assert!(bad("PURPOSE a; DROP TABLE x").contains("\";\""));
        assert!(bad("PURPOSE 1abc").contains("\"1abc\""));
        assert!(bad("PURPOSE 'quoted'").contains("'quoted'"));
        assert!(bad("CATEGORY").contains("end of label"));
        assert!(bad("CATEGORY a b").contains("\"b\""));
        assert!(bad("SUBJECT x").contains("\"x\""));
        assert!(bad("ANONYMIZE").contains("end of label"));
        assert!(bad("ANONYMIZE SHRED").contains("\"SHRED\""));
        assert!(bad("ANONYMIZE TRUNCATE week").contains("\"week\""));
        assert!(bad("ANONYMIZE TRUNCATE").contains("end of label"));
        assert!(bad("ANONYMIZE CONSTANT x").contains("\"x\""));
        assert!(bad("ANONYMIZE CONSTANT 'open").contains("unterminated"));
        assert!(bad("ANONYMIZE FUNCTION f").contains("schema.func"));
        assert!(bad("ANONYMIZE FUNCTION a.").contains("end of label"));
        assert!(bad("ANONYMIZE FUNCTION \"\".f").contains("zero-length"));
        assert!(bad("PURPOSE a -- comment").contains("\"-\""));
        assert!(bad("PURPOSE SUBJECT").contains("keyword"));
    }

    #[test]
    fn rejects_repeated_clauses() {
        assert!(bad("PURPOSE a PURPOSE b").contains("PURPOSE appears more than once"));
        assert!(bad("SUBJECT SUBJECT").contains("SUBJECT appears more than once"));
        assert!(bad("CATEGORY a CATEGORY a").contains("CATEGORY appears more than once"));
        assert!(bad("ANONYMIZE NULL ANONYMIZE EMAIL").contains("ANONYMIZE appears more than once"));
        assert!(bad("PURPOSE a, A").contains("listed twice"));
    }

    #[test]
    fn unicode_names_are_rejected_by_name() {
        let m = bad("PURPOSE marketing CATEGORY kontaktdäten");
        assert!(m.contains("kontaktdäten"), "{m}");
        let m = bad("PURPOSE 営業");
        assert!(m.contains("営業"), "{m}");
        let m = bad("PURPOSE a ✓");
        assert!(m.contains('✓'), "{m}");
    }

    #[test]
    fn very_long_input() {
        let many: Vec<String> = (0..500).map(|i| format!("p{i}")).collect();
        let l = ok(&format!("PURPOSE {}", many.join(", ")));
        assert_eq!(l.purposes.len(), 500);
        let huge = format!("PURPOSE {}", "x".repeat(MAX_LABEL_LEN));
        assert!(bad(&huge).contains("maximum"));
        // long bad tokens are shortened in the message
        let long_word = "y".repeat(1000);
        let m = bad(&format!("PURPOSE a {long_word}"));
        assert!(m.len() < 200, "{m}");
        assert!(m.contains('…'));
    }

    #[test]
    fn not_personal_stands_alone() {
        let l = ok("not Personal");
        assert!(l.not_personal);
        assert!(l.purposes.is_empty() && l.category.is_none() && !l.subject);
        assert_eq!(l.to_string(), "NOT PERSONAL");
        assert_eq!(ok(&l.to_string()), l);
        assert!(bad("NOT").contains("end of label"));
        assert!(bad("NOT SUBJECT").contains("expected PERSONAL after NOT"));
        assert!(bad("PERSONAL").contains("\"PERSONAL\""));
        assert!(bad("NOT PERSONAL NOT PERSONAL").contains("more than once"));
        assert!(bad("NOT PERSONAL PURPOSE a").contains("cannot be combined"));
        assert!(bad("SUBJECT NOT PERSONAL").contains("cannot be combined"));
        assert!(bad("NOT PERSONAL ANONYMIZE NULL").contains("cannot be combined"));
        // names that happen to be the words still work where names go
        assert_eq!(
            ok("PURPOSE personal, not").purposes,
            vec!["personal", "not"]
        );
    }

    #[test]
    fn method_alone_rejects_trailing_tokens() {
        assert!(parse_method("EMAIL PURPOSE x").is_err());
        assert!(parse_method("").is_err());
    }
}
