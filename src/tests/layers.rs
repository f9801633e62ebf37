//! The layering rule of `lib.rs`: a top-level module uses only modules
//! declared above it there (its own files aside), so the modules form no
//! import cycle. Checked on the source text, as a plain `#[test]`: every
//! `crate::<module>` path (in `use` lines and in code, comments left out)
//! must name a module declared earlier than the file's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules of `src/lib.rs`, in declaration order (`tests` left
/// out: tests may use anything).
fn declared(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            (name != "tests").then(|| name.to_string())
        })
        .collect()
}

/// The `.rs` files of module `name`: `src/name.rs` or `src/name/**.rs`.
fn files(src: &Path, name: &str) -> Vec<PathBuf> {
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every module named by a `crate::x` path or a `use crate::{x, …}` group
/// in `text`, comments removed.
fn used_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let ident: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() {
                    out.push(ident);
                }
            }
        }
    }
    out
}

#[test]
fn modules_only_use_modules_declared_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = declared(&src);
    assert!(order.len() > 5, "lib.rs modules not found: {order:?}");
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut upward = Vec::new();
    for (i, m) in order.iter().enumerate() {
        for f in files(&src, m) {
            let text = std::fs::read_to_string(&f).expect("read module file");
            for used in used_modules(&text) {
                match rank.get(used.as_str()) {
                    // `crate::tests` only exists in test builds
                    None if used == "tests" => {}
                    None => upward.push(format!(
                        "{}: crate::{used} is no module of lib.rs",
                        f.display()
                    )),
                    Some(&j) if j > i => upward.push(format!(
                        "{}: {m} uses crate::{used}, declared below it",
                        f.display()
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "upward dependencies:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_check_sees_paths_and_groups() {
    let text = "use crate::a::b;\nuse crate::{c, d::e};\nlet x = crate::f::g(); // crate::h\n";
    assert_eq!(used_modules(text), ["a", "c", "d", "f"]);
}
