//! Readable renderings: the record of processing for a DPO, an export for
//! the person it is about. Pure Rust over the `jsonb` documents (unit
//! tested). Every value from the database is escaped: Markdown and HTML
//! characters are backslash-escaped or replaced, newlines become spaces, so
//! a value cannot add a heading, a link or markup to the document.

use serde_json::Value;
use std::fmt::Write;

/// Escape a value for Markdown text or a table cell.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text ("—" for null or empty).
fn v(x: &Value) -> String {
    match x {
        Value::Null => "—".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => esc(s),
        Value::Array(a) if a.is_empty() => "—".into(),
        Value::Array(a) => a.iter().map(v).collect::<Vec<_>>().join(", "),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => esc(&other.to_string()),
    }
}

/// A value as inline code (identifiers, SQL).
fn code(x: &Value) -> String {
    match x {
        Value::Null => "—".into(),
        Value::String(s) => format!("`{}`", s.replace('`', "'").replace(['\n', '\r'], " ")),
        other => format!("`{}`", other.to_string().replace('`', "'")),
    }
}

fn arr(x: &Value) -> &[Value] {
    x.as_array().map(|a| a.as_slice()).unwrap_or(&[])
}

fn legal_basis(b: &Value) -> String {
    let text = match b.as_str().unwrap_or("") {
        "consent" => "consent (Art. 6(1)(a))",
        "contract" => "performance of a contract (Art. 6(1)(b))",
        "legal_obligation" => "legal obligation (Art. 6(1)(c))",
        "vital_interests" => "vital interests (Art. 6(1)(d))",
        "public_task" => "public task (Art. 6(1)(e))",
        "legitimate_interests" => "legitimate interests (Art. 6(1)(f))",
        _ => return v(b),
    };
    text.into()
}

/// The record of processing activities (Art. 30(1)).
pub fn record(doc: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Record of processing activities\n");
    let _ = writeln!(
        o,
        "Database {}, generated {} by pg_privacy (GDPR Art. 30(1)).\n",
        code(&doc["database"]),
        v(&doc["generated_at"])
    );
    let _ = writeln!(o, "## Controller\n");
    let c = &doc["controller"];
    if c.is_null() {
        let _ = writeln!(o, "Not declared (`privacy.declare_controller()`).\n");
    } else {
        let _ = writeln!(o, "- Name: {}", v(&c["name"]));
        let _ = writeln!(o, "- Contact: {}", v(&c["contact"]));
        let _ = writeln!(o, "- Representative: {}", v(&c["representative"]));
        let _ = writeln!(
            o,
            "- Data protection officer: {} ({})\n",
            v(&c["dpo"]["name"]),
            v(&c["dpo"]["contact"])
        );
    }
    let _ = writeln!(o, "## Purposes of the processing\n");
    if arr(&doc["purposes"]).is_empty() {
        let _ = writeln!(o, "No purpose is defined.\n");
    }
    for p in arr(&doc["purposes"]) {
        let _ = writeln!(o, "### {}\n", v(&p["name"]));
        let _ = writeln!(o, "- Description: {}", v(&p["description"]));
        let _ = writeln!(o, "- Legal basis: {}", legal_basis(&p["legal_basis"]));
        let _ = writeln!(o, "- Data subjects: {}", codes(&p["data_subjects"]));
        let _ = writeln!(o, "- Retention: {}", codes(&p["retention"]));
        let _ = writeln!(o, "- Recipients: {}\n", v(&p["recipients"]));
        if !arr(&p["data_categories"]).is_empty() {
            let _ = writeln!(o, "| category of personal data | columns |\n|---|---|");
            for dc in arr(&p["data_categories"]) {
                let _ = writeln!(o, "| {} | {} |", v(&dc["category"]), codes(&dc["columns"]));
            }
            let _ = writeln!(o);
        }
    }
    let _ = writeln!(o, "## Categories of data subjects\n");
    if arr(&doc["data_subject_categories"]).is_empty() {
        let _ = writeln!(o, "No table has a SUBJECT column.\n");
    } else {
        let _ = writeln!(
            o,
            "| table | identified by | data subjects |\n|---|---|---|"
        );
        for s in arr(&doc["data_subject_categories"]) {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                code(&s["table"]),
                code(&s["subject_column"]),
                v(&s["description"])
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Recipients\n");
    recipients(&mut o, &doc["recipients"]);
    let _ = writeln!(o, "## Transfers to third countries\n");
    if arr(&doc["transfers"]).is_empty() {
        let _ = writeln!(o, "None declared.\n");
    } else {
        let _ = writeln!(o, "| recipient | country | safeguards |\n|---|---|---|");
        for r in arr(&doc["transfers"]) {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                v(&r["name"]),
                v(&r["country"]),
                v(&r["safeguards"])
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Time limits for erasure\n");
    if arr(&doc["retention_policies"]).is_empty() {
        let _ = writeln!(o, "No retention policy.\n");
    } else {
        let _ = writeln!(
            o,
            "| policy | table | kept for | after | action | rows | runs every | last successful run |\n|---|---|---|---|---|---|---|---|"
        );
        for p in arr(&doc["retention_policies"]) {
            let scope = match (&p["row_filter"], &p["purpose"]) {
                (Value::Null, Value::Null) => "all".to_string(),
                (f, Value::Null) => code(f),
                (Value::Null, pu) => format!("columns of {}", v(pu)),
                (f, pu) => format!("{}, columns of {}", code(f), v(pu)),
            };
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} |",
                v(&p["name"]),
                if p["enabled"] == Value::Bool(false) {
                    " (disabled)"
                } else {
                    ""
                },
                code(&p["table"]),
                v(&p["keep_for"]),
                code(&p["anchor"]),
                v(&p["action"]),
                scope,
                v(&p["schedule_interval"]),
                v(&p["last_successful_run"])
            );
        }
        let _ = writeln!(o);
    }
    let tm = &doc["technical_measures"];
    let _ = writeln!(o, "## Technical and organisational measures\n");
    let _ = writeln!(
        o,
        "- Keyed-hash pseudonymization (HMAC-SHA256), keys held in the database:"
    );
    if arr(&tm["pseudonymization_keys"]).is_empty() {
        let _ = writeln!(o, "  none");
    }
    for k in arr(&tm["pseudonymization_keys"]) {
        let _ = writeln!(
            o,
            "  - {} version {}, fingerprint {}, active since {} ({} days)",
            code(&k["name"]),
            v(&k["version"]),
            code(&k["fingerprint"]),
            v(&k["active_since"]),
            v(&k["age_days"])
        );
    }
    let _ = writeln!(o, "- Anonymization when retention or erasure applies:");
    if arr(&tm["anonymization"]).is_empty() {
        let _ = writeln!(o, "  none declared (rows are deleted)");
    }
    for a in arr(&tm["anonymization"]) {
        let _ = writeln!(o, "  - {}: {}", code(&a["column"]), v(&a["method"]));
    }
    let h = &tm["legal_holds_in_force"];
    let _ = writeln!(
        o,
        "- Legal holds in force: {} (tables: {}; data subjects: {})",
        v(&h["count"]),
        codes(&h["tables"]),
        v(&h["subject_holds"])
    );
    let _ = writeln!(
        o,
        "- Audit log: {} entries since {} (append-only)",
        v(&tm["audit_log"]["entries"]),
        v(&tm["audit_log"]["since"])
    );
    o
}

fn codes(x: &Value) -> String {
    if arr(x).is_empty() {
        "—".into()
    } else {
        arr(x).iter().map(code).collect::<Vec<_>>().join(", ")
    }
}

fn recipients(o: &mut String, rs: &Value) {
    if arr(rs).is_empty() {
        let _ = writeln!(o, "None declared.\n");
        return;
    }
    let _ = writeln!(
        o,
        "| recipient | description | purposes | country |\n|---|---|---|---|"
    );
    for r in arr(rs) {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {}{} |",
            v(&r["name"]),
            v(&r["description"]),
            v(&r["purposes"]),
            v(&r["country"]),
            if r["third_country"] == Value::Bool(true) {
                " (third country)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(o);
}

/// An export of a data subject (Art. 15), for the person.
pub fn export(doc: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Your personal data\n");
    let _ = writeln!(
        o,
        "Copy of the personal data held about data subject {}, made {} (GDPR Art. 15).\n",
        code(&doc["subject"]),
        v(&doc["exported_at"])
    );
    let c = &doc["controller"];
    if !c.is_null() {
        let _ = writeln!(
            o,
            "Controller: {} ({}). Data protection officer: {} ({}).\n",
            v(&c["name"]),
            v(&c["contact"]),
            v(&c["dpo"]["name"]),
            v(&c["dpo"]["contact"])
        );
    }
    let _ = writeln!(o, "## Why we process it\n");
    let purposes = doc["purposes"].as_object();
    match purposes {
        Some(ps) if !ps.is_empty() => {
            let _ = writeln!(o, "| purpose | description | legal basis |\n|---|---|---|");
            for (name, p) in ps {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} |",
                    esc(name),
                    v(&p["description"]),
                    legal_basis(&p["legal_basis"])
                );
            }
            let _ = writeln!(o);
        }
        _ => {
            let _ = writeln!(o, "No purpose applies.\n");
        }
    }
    let _ = writeln!(o, "## Objections on record\n");
    if arr(&doc["objections"]).is_empty() {
        let _ = writeln!(o, "None.\n");
    } else {
        for ob in arr(&doc["objections"]) {
            let _ = writeln!(
                o,
                "- {} (since {})",
                v(&ob["purpose"]),
                v(&ob["objected_at"])
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Who receives it\n");
    recipients(&mut o, &doc["recipients"]);
    let _ = writeln!(o, "## The data\n");
    let empty = serde_json::Map::new();
    let tables = doc["tables"].as_object().unwrap_or(&empty);
    let mut any = false;
    for (name, t) in tables {
        let rows = arr(&t["rows"]);
        if rows.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(o, "### {}\n", esc(name));
        let cols = t["columns"].as_object().unwrap_or(&empty);
        let _ = writeln!(
            o,
            "| field | purposes | category | kept |\n|---|---|---|---|"
        );
        for (cname, cdef) in cols {
            let kept: Vec<String> = arr(&cdef["retention"])
                .iter()
                .map(|r| {
                    format!(
                        "{} {} after {}",
                        v(&r["action"]),
                        v(&r["keep_for"]),
                        v(&r["anchor"])
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                esc(cname),
                v(&cdef["purposes"]),
                v(&cdef["category"]),
                if kept.is_empty() {
                    "until erased on request".to_string()
                } else {
                    kept.join("; ")
                }
            );
        }
        let _ = writeln!(o);
        let names: Vec<&String> = cols.keys().collect();
        let _ = writeln!(
            o,
            "| {} |\n|{}",
            names.iter().map(|n| esc(n)).collect::<Vec<_>>().join(" | "),
            "---|".repeat(names.len().max(1))
        );
        for r in rows {
            let cells: Vec<String> = names.iter().map(|n| v(&r[n.as_str()])).collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(o);
    }
    if !any {
        let _ = writeln!(o, "No personal data about you is held.\n");
    }
    let _ = writeln!(
        o,
        "You may ask for your data to be rectified or erased, for its processing to be restricted, object to it, and lodge a complaint with a supervisory authority (GDPR Art. 15(1)(e), (f))."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_cannot_add_markup() {
        assert_eq!(esc("a|b\nc"), "a\\|b c");
        assert_eq!(esc("<script>"), "&lt;script&gt;");
        assert_eq!(esc("[x](http://e)"), "\\[x\\](http://e)");
        assert_eq!(esc("# title"), "\\# title");
        assert_eq!(code(&json!("a`b\nc")), "`a'b c`");
    }

    #[test]
    fn record_renders_every_section() {
        let doc = json!({
            "database": "shop", "generated_at": "2026-01-01T00:00:00Z",
            "controller": {"name": "Shop Ltd", "contact": "1 Main St", "representative": null,
                           "dpo": {"name": "Ada", "contact": "dpo@shop.example"}},
            "purposes": [{"name": "marketing", "description": "newsletters", "legal_basis": "consent",
                          "data_categories": [{"category": "contact", "columns": ["public.customers.email"]}],
                          "data_subjects": ["public.customers"], "retention": ["customers_delete"],
                          "recipients": ["mailer"]}],
            "data_subject_categories": [{"table": "public.customers", "subject_column": "id", "description": "customers"}],
            "recipients": [{"name": "mailer", "description": "sends mail", "purposes": ["marketing"],
                            "country": "US", "third_country": true, "safeguards": "SCC"}],
            "transfers": [{"name": "mailer", "country": "US", "safeguards": "SCC", "third_country": true}],
            "retention_policies": [{"name": "customers_delete", "table": "public.customers", "anchor": "closed_at",
                                    "keep_for": "1 year", "action": "delete", "row_filter": null, "purpose": null,
                                    "schedule_interval": "01:00:00", "enabled": true, "last_successful_run": null}],
            "technical_measures": {"pseudonymization_keys": [{"name": "default", "version": 1, "fingerprint": "ab12",
                                   "active_since": "2026-01-01", "age_days": 0}],
                                   "anonymization": [{"column": "public.customers.email", "method": "EMAIL"}],
                                   "legal_holds_in_force": {"count": 0, "tables": [], "subject_holds": 0},
                                   "audit_log": {"entries": 3, "since": "2026-01-01"}}
        });
        let md = record(&doc);
        for needle in [
            "# Record of processing activities",
            "- Name: Shop Ltd",
            "### marketing",
            "consent (Art. 6(1)(a))",
            "| contact | `public.customers.email` |",
            "| `public.customers` | `id` | customers |",
            "| mailer | US | SCC |",
            "| customers\\_delete | `public.customers` | 1 year | `closed_at` | delete | all |",
            "`default` version 1, fingerprint `ab12`",
            "`public.customers.email`: EMAIL",
            "Audit log: 3 entries",
        ] {
            assert!(md.contains(needle), "{needle} not in\n{md}");
        }
    }

    #[test]
    fn export_renders_data_and_rights() {
        let doc = json!({
            "subject": "42", "exported_at": "2026-01-01T00:00:00Z", "controller": null,
            "purposes": {"support": {"description": "help desk", "legal_basis": "contract"}},
            "objections": [{"purpose": "marketing", "objected_at": "2026-01-01T00:00:00Z"}],
            "recipients": [],
            "tables": {"public.customers": {
                "columns": {"email": {"purposes": ["support"], "category": "contact", "legal_bases": {"support": "contract"},
                                       "retention": [{"policy": "p", "anchor": "closed_at", "keep_for": "1 year", "action": "delete"}]}},
                "rows": [{"email": "a|b@example.com"}], "retention": []}}
        });
        let md = export(&doc);
        for needle in [
            "data subject `42`",
            "| support | help desk | performance of a contract (Art. 6(1)(b)) |",
            "- marketing (since 2026-01-01T00:00:00Z)",
            "### public.customers",
            "| email | support | contact | delete 1 year after closed\\_at |",
            "| a\\|b@example.com |",
            "lodge a complaint",
        ] {
            assert!(md.contains(needle), "{needle} not in\n{md}");
        }
    }
}
