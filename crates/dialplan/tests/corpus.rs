//! The corpus of broken dialplans in tests/fixtures/dialplans.
//!
//! Each fixture states, in `# expect:` lines at its end, every diagnostic the
//! loader must produce for it (`line:col: severity: message`), or
//! `# expect: none`. The test compares the complete list, so a new spurious
//! diagnostic fails as surely as a missing one.

// Tests play the shell: they read (and with BLESS=1 write) the fixtures.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;

use common::{load_dir, load_file};
use ringback_dialplan::Diagnostic;

fn expectations(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.strip_prefix("# expect:"))
        .map(|l| l.trim().to_string())
        .filter(|l| l != "none")
        .collect()
}

fn render(d: &Diagnostic) -> String {
    format!("{}:{}: {}: {}", d.line, d.col, d.severity, d.message)
}

fn check_fixture(path: &Path) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let expected = expectations(&src);
    if !src.contains("# expect:") {
        return Err("fixture has no `# expect:` line".into());
    }
    let diags = match load_file(path, &common::fixture_ctx()) {
        Ok((_, warnings)) => warnings,
        Err(all) => all,
    };
    for d in &diags {
        if d.file != path {
            return Err(format!("diagnostic names the wrong file: {d}"));
        }
    }
    let actual: Vec<String> = diags.iter().map(render).collect();
    if actual != expected && std::env::var_os("BLESS").is_some() {
        // BLESS=1 rewrites the `# expect:` lines from the actual output;
        // review the diff before committing it.
        // The expectations go at the end so they never shift the lines they
        // talk about.
        let mut lines: Vec<String> = src
            .lines()
            .filter(|l| !l.starts_with("# expect:"))
            .map(str::to_string)
            .collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if actual.is_empty() {
            lines.push("# expect: none".into());
        }
        lines.extend(actual.iter().map(|a| format!("# expect: {a}")));
        std::fs::write(path, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
        return Ok(());
    }
    if actual != expected {
        return Err(format!(
            "expected:\n{}\nactual:\n{}",
            expected
                .iter()
                .map(|l| format!("# expect: {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .iter()
                .map(|l| format!("# expect: {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    Ok(())
}

#[test]
fn every_fixture_produces_exactly_its_expected_diagnostics() {
    let dir = common::repo().join("tests/fixtures/dialplans");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "corpus shrank: {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        if let Err(e) = check_fixture(f) {
            failures.push(format!("== {}\n{e}", f.display()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The checks the contract requires each have a fixture; deleting one is a
/// visible change.
#[test]
fn corpus_covers_every_required_check() {
    let dir = common::repo().join("tests/fixtures/dialplans");
    for case in [
        "syntax-error",
        "unknown-key",
        "missing-required",
        "wrong-type",
        "unknown-type",
        "start-unknown",
        "unknown-target",
        "prompt-missing",
        "queue-unknown",
        "duplicate-digit",
        "invalid-digit",
        "zero-bound",
        "no-operator",
        "unreachable",
        "goto-loop",
        "set-hours-loop",
        "digits-range",
        "timeout-range",
        "bad-hours",
        "empty-numbers",
    ] {
        assert!(
            dir.join(format!("{case}.toml")).is_file(),
            "missing fixture {case}"
        );
    }
}

#[test]
fn a_number_claimed_by_two_files_is_reported_at_both() {
    let dir = common::repo().join("tests/fixtures/dialplans/dup-numbers");
    let errs = load_dir(&dir, &common::fixture_ctx()).expect_err("duplicates");
    let shown: Vec<String> = errs
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d.file.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
                render(d)
            )
        })
        .collect();
    let a = dir.join("a.toml");
    let b = dir.join("b.toml");
    let c = dir.join("c.toml");
    assert_eq!(
        shown,
        vec![
            format!("a.toml:2:12: error: number `1000` is claimed by more than one dialplan (also at {}:2:20); each number may be answered by one file only", b.display()),
            format!("a.toml:2:20: error: the catch-all number \"*\" is claimed by more than one dialplan (also at {}:2:12); each number may be answered by one file only", c.display()),
            format!("b.toml:2:20: error: number `1000` is claimed by more than one dialplan (also at {}:2:12); each number may be answered by one file only", a.display()),
            format!("c.toml:2:12: error: the catch-all number \"*\" is claimed by more than one dialplan (also at {}:2:20); each number may be answered by one file only", a.display()),
            // errors of every file are collected, not just the first file's
            "c.toml:3:9: error: start node `nope` does not exist".to_string(),
            // (no unreachable warning: fix the dangling `start` first)
        ]
    );
}
