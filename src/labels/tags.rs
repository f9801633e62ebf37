//! Column tags: reading them back, and changing them through
//! `SECURITY LABEL` (the SQL wrappers `tag_column`, `mark_subject`,
//! `untag_column` of [`crate::api::tags`]).
//!
//! Tags are stored by PostgreSQL itself in `pg_seclabel`, so they follow
//! column renames, vanish with dropped columns and tables, and are dumped by
//! `pg_dump`. Other modules read them through [`table_tags`] and
//! [`subject_tables`]; every reader ignores temporary relations (see
//! [`super::provider`]).

use super::grammar::{self, Label};
use crate::error::{PResult, PrivacyError};
use crate::security::Scope;
use crate::types::regclass_text;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// A tagged column of a table, with its parsed label.
#[derive(Debug, Clone)]
pub struct ColumnTag {
    pub attnum: i16,
    pub name: String,
    pub type_oid: pg_sys::Oid,
    pub not_null: bool,
    pub label: Label,
}

/// The tagged columns of one table, in column order. Unparsable labels (which
/// only a restore with checks off can leave behind) are skipped.
pub fn table_tags(relid: pg_sys::Oid) -> PResult<Vec<ColumnTag>> {
    Ok(tagged_columns("l.objoid = $1", &[relid.into()])?
        .into_iter()
        .map(|(_, tag)| tag)
        .collect())
}

/// The tagged columns, as (table oid, tag), of the tables `cond` selects
/// (SQL over `l`, the label, and `c`, the table's pg_class row), by table
/// then column number. A label that does not parse is left out.
fn tagged_columns(cond: &str, args: &[DatumWithOid]) -> PResult<Vec<(pg_sys::Oid, ColumnTag)>> {
    Scope::pinned().run(|| tagged_columns_pinned(cond, args))
}

fn tagged_columns_pinned(
    cond: &str,
    args: &[DatumWithOid],
) -> PResult<Vec<(pg_sys::Oid, ColumnTag)>> {
    Spi::connect(|c| {
        let rows = c.select(
            &format!(
                "SELECT l.objoid, a.attnum, a.attname::text, a.atttypid, a.attnotnull, l.label
                   FROM pg_catalog.pg_seclabel l
                   JOIN pg_catalog.pg_class c ON c.oid = l.objoid
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = l.objoid AND a.attnum = l.objsubid
                  WHERE l.provider = 'privacy' AND l.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND l.objsubid > 0 AND NOT a.attisdropped AND c.relpersistence <> 't' AND {cond}
                  ORDER BY l.objoid, a.attnum"
            ),
            None,
            args,
        )?;
        let mut out = Vec::new();
        for r in rows {
            let text: String = r.get(6)?.unwrap_or_default();
            // NOT PERSONAL: reviewed, no personal data, nothing to visit
            if let Ok(label) = grammar::parse(&text).map_err(|_| ()).and_then(|l| {
                if l.not_personal {
                    Err(())
                } else {
                    Ok(l)
                }
            }) {
                out.push((
                    r.get(1)?.unwrap_or(pg_sys::Oid::INVALID),
                    ColumnTag {
                        attnum: r.get(2)?.unwrap_or(0),
                        name: r.get(3)?.unwrap_or_default(),
                        type_oid: r.get(4)?.unwrap_or(pg_sys::Oid::INVALID),
                        not_null: r.get(5)?.unwrap_or(false),
                        label,
                    },
                ));
            }
        }
        Ok(out)
    })
}

/// Every table (plain or partitioned) with a SUBJECT column: (table oid,
/// the subject column, all its tagged columns), in oid order, read in one
/// query.
pub fn subject_tables() -> PResult<Vec<(pg_sys::Oid, ColumnTag, Vec<ColumnTag>)>> {
    let rows = tagged_columns("c.relkind IN ('r', 'p')", &[])?;
    let mut out: Vec<(pg_sys::Oid, Option<ColumnTag>, Vec<ColumnTag>)> = Vec::new();
    for (relid, tag) in rows {
        if out.last().map(|t| t.0) != Some(relid) {
            out.push((relid, None, Vec::new()));
        }
        let t = out.last_mut().expect("pushed above");
        if tag.label.subject && t.1.is_none() {
            t.1 = Some(tag.clone());
        }
        t.2.push(tag);
    }
    Ok(out
        .into_iter()
        .filter_map(|(relid, subject, tags)| subject.map(|s| (relid, s, tags)))
        .collect())
}

fn current_label(relid: pg_sys::Oid, attnum: i16) -> PResult<Option<Label>> {
    let text: Option<String> = crate::sql::opt::<String>(
        "SELECT label FROM pg_catalog.pg_seclabel
          WHERE provider = 'privacy' AND classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND objoid = $1 AND objsubid = $2",
        &[relid.into(), attnum.into()],
    )?;
    Ok(text.and_then(|t| grammar::parse(&t).ok()))
}

fn attnum_of(relid: pg_sys::Oid, col: &str) -> PResult<i16> {
    Ok(crate::catalog::column_named(relid, col)?
        .ok_or_else(|| {
            PrivacyError::undefined_column(format!(
                "column \"{col}\" of relation {} does not exist",
                regclass_text(relid)
            ))
        })?
        .attnum)
}

/// Apply a label (or remove it with `None`) through `SECURITY LABEL`, so the
/// caller's ownership of the table is checked by PostgreSQL and the hook
/// validates and audits it.
fn set_label(relid: pg_sys::Oid, col: &str, label: Option<&Label>) -> PResult<()> {
    let target = format!(
        "{}.{}",
        crate::types::qualified_name(relid)?,
        spi::quote_identifier(col)
    );
    let value = match label {
        Some(l) => spi::quote_literal(l.to_string()),
        None => "NULL".to_string(),
    };
    Spi::run(&format!(
        "SECURITY LABEL FOR privacy ON COLUMN {target} IS {value}"
    ))?;
    Ok(())
}

/// `tag_column`: replaces the column's purposes, category and method; keeps
/// its SUBJECT mark.
pub fn tag_column(
    relid: pg_sys::Oid,
    col: &str,
    purposes: Vec<Option<String>>,
    category: Option<String>,
    anonymize: Option<String>,
) -> PResult<()> {
    let attnum = attnum_of(relid, col)?;
    let mut label = Label {
        subject: current_label(relid, attnum)?
            .map(|l| l.subject)
            .unwrap_or(false),
        ..Label::default()
    };
    for p in purposes {
        let p = p.ok_or_else(|| PrivacyError::null_value("a purpose"))?;
        let parsed = grammar::parse(&format!("PURPOSE {p}")).map_err(|_| {
            PrivacyError::invalid_parameter(format!("invalid purpose name \"{p}\""))
        })?;
        for name in parsed.purposes {
            if label.purposes.contains(&name) {
                return Err(PrivacyError::invalid_parameter(format!(
                    "purpose \"{name}\" is listed twice"
                )));
            }
            label.purposes.push(name);
        }
    }
    if let Some(c) = category {
        let parsed = grammar::parse(&format!("CATEGORY {c}")).map_err(|_| {
            PrivacyError::invalid_parameter(format!("invalid category name \"{c}\""))
        })?;
        label.category = parsed.category;
    }
    if let Some(a) = anonymize {
        label.anonymize = Some(
            grammar::parse_method(strip_anonymize_keyword(&a))
                .map_err(|e| PrivacyError::invalid_parameter(e.message))?,
        );
    }
    if label == Label::default() {
        return Err(PrivacyError::invalid_parameter(
            "tag_column needs at least one purpose, a category or a method",
        )
        .with_hint("Use privacy.untag_column() to remove a tag."));
    }
    set_label(relid, col, Some(&label))
}

/// `tag_column`'s `anonymize` is the method (`CONSTANT 'x'`); the label's
/// own spelling (`ANONYMIZE CONSTANT 'x'`) is accepted too.
fn strip_anonymize_keyword(method: &str) -> &str {
    let t = method.trim_start();
    match t.get(..9) {
        Some(kw)
            if kw.eq_ignore_ascii_case("anonymize")
                && t[9..].starts_with(|c: char| c.is_whitespace()) =>
        {
            t[9..].trim_start()
        }
        _ => method,
    }
}

/// `mark_subject`: adds SUBJECT to the column's tag.
pub fn mark_subject(relid: pg_sys::Oid, col: &str) -> PResult<()> {
    let attnum = attnum_of(relid, col)?;
    let mut label = current_label(relid, attnum)?.unwrap_or_default();
    label.subject = true;
    label.not_personal = false;
    set_label(relid, col, Some(&label))
}

/// `untag_column`: removes the column's tag entirely.
pub fn untag_column(relid: pg_sys::Oid, col: &str) -> PResult<()> {
    attnum_of(relid, col)?;
    set_label(relid, col, None)
}

#[cfg(test)]
mod unit {
    use super::strip_anonymize_keyword;

    #[test]
    fn tag_column_accepts_the_label_spelling_of_a_method() {
        assert_eq!(strip_anonymize_keyword("CONSTANT 'x'"), "CONSTANT 'x'");
        assert_eq!(
            strip_anonymize_keyword("ANONYMIZE CONSTANT 'x'"),
            "CONSTANT 'x'"
        );
        assert_eq!(strip_anonymize_keyword("  anonymize\tEMAIL"), "EMAIL");
        // not the keyword: left to the parser (which names the bad token)
        assert_eq!(strip_anonymize_keyword("ANONYMIZED"), "ANONYMIZED");
        assert_eq!(strip_anonymize_keyword("ANONYMIZE"), "ANONYMIZE");
        assert_eq!(strip_anonymize_keyword("é"), "é");
    }
}
