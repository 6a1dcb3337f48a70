//! The core's modules import one way:
//!
//! model → window, baseline, text → state → client_care → finding → rules → config → alerting → engine
//!
//! This test reads every source file under `src/`, finds the `crate::<module>`
//! paths it uses (including `use crate::{a, b}` groups and paths in serde
//! attributes), and fails if a module names one that comes later in the
//! order. Test code is exempt: `#[cfg(test)]` modules and `rules/testkit.rs`
//! (which drives the engine). Whole-line comments are skipped (doc links
//! are not imports). The edge modules (`proto`, `decode`, `codec`,
//! `partition`) are outside the order.

use std::path::{Path, PathBuf};

/// The layers, lowest first; modules in one layer may not import each other's later layers.
const ORDER: &[&[&str]] = &[
    &["model"],
    &["window", "baseline", "text"],
    &["state"],
    &["client_care"],
    &["finding"],
    &["rules"],
    &["config"],
    &["alerting"],
    &["engine"],
];

/// Files exempt from the check (test helpers), relative to `src/`.
const EXEMPT: &[&str] = &["rules/testkit.rs"];

fn rank(module: &str) -> Option<usize> {
    ORDER.iter().position(|layer| layer.contains(&module))
}

/// The source with `#[cfg(test)]`-gated modules and whole-line comments removed.
fn production_code(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if let Some(after) = t.strip_prefix("#[cfg(test)]") {
            // Skip the gated item: up to its `;` or its matching `}`.
            let mut depth = 0i32;
            let mut opened = false;
            let mut rest = after.to_string();
            loop {
                for c in rest.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                let ended = (opened && depth <= 0) || (!opened && rest.trim_end().ends_with(';'));
                if ended {
                    break;
                }
                match lines.next() {
                    Some(next) => rest = next.to_string(),
                    None => break,
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Every top-level module named after `crate::` in `code`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        // `tillsyn_crate::` or `my_crate::` are other paths.
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d}`: the first segment of each top-level entry.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        found.push(ident_at(&group[j..]).to_string());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident_at(rest).to_string());
        }
    }
    found
}

/// `(file, its module, the later module it imports)` for every import against the order.
fn violations(files: &[(String, String)]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, source) in files {
        if EXEMPT.contains(&path.as_str()) {
            continue;
        }
        let module = path.split('/').next().unwrap_or("").trim_end_matches(".rs").to_string();
        let Some(own) = rank(&module) else { continue };
        for imported in crate_paths(&production_code(source)) {
            if rank(&imported).is_some_and(|r| r > own) {
                out.push((path.clone(), module.clone(), imported));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("readable src dir").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src").to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).expect("readable source")));
        }
    }
}

#[test]
fn core_modules_import_only_earlier_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &src, &mut files);
    assert!(files.len() > 30, "read the core's sources ({} files)", files.len());
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "imports against the layer order model → window, baseline, text → state → client_care → finding → rules → config → alerting \
         → engine:\n{}",
        bad.iter().map(|(f, m, i)| format!("  src/{f}: `{m}` imports `crate::{i}`")).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_check_catches_reverse_imports_and_exempts_test_code() {
    let files = vec![
        ("state.rs".to_string(), "use crate::model::Day;\nuse crate::engine::Engine;\n".to_string()),
        ("finding.rs".to_string(), "use crate::{model::Day, rules::Rule};\n".to_string()),
        (
            "rules/share.rs".to_string(),
            "#[serde(with = \"crate::alerting::x\")]\nstruct A;\n/// See [`crate::engine`].\n\
             #[cfg(test)]\nmod tests {\n    use crate::engine::Engine;\n    fn f() { if true { } }\n}\n\
             use crate::state::ProviderDay;\n"
                .to_string(),
        ),
        ("rules/testkit.rs".to_string(), "use crate::engine::Engine;\n".to_string()),
        ("engine/mod.rs".to_string(), "use crate::{alerting::Alert, rules::Rule};\n".to_string()),
        ("decode.rs".to_string(), "use crate::engine::Engine;\n".to_string()),
    ];
    let found: Vec<_> = violations(&files).into_iter().map(|(f, _, i)| format!("{f} -> {i}")).collect();
    assert_eq!(found, vec!["finding.rs -> rules", "rules/share.rs -> alerting", "state.rs -> engine"]);
}
