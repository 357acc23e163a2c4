//! Shared helpers for the integration tests.
#![allow(dead_code)]
// Tests play the shell: they read the fixture and demo files themselves.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ringback_dialplan::{
    load_sources, load_str, read_error, CheckContext, Diagnostic, Diagnostics, Dialplan,
    DialplanSet, SourceFile,
};

/// Reads and checks one dialplan file, as the server's `plan_loader` does.
pub fn load_file(
    path: &Path,
    ctx: &CheckContext,
) -> Result<(Dialplan, Vec<Diagnostic>), Diagnostics> {
    let source = std::fs::read_to_string(path).map_err(|e| vec![read_error(path, &e)])?;
    load_str(path, &source, ctx)
}

/// Every `*.toml` file of `dir`, read (panics if the directory cannot be).
pub fn read_sources(dir: &Path) -> Vec<SourceFile> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .map(|path| SourceFile {
            text: std::fs::read_to_string(&path),
            path,
        })
        .collect()
}

/// Reads and loads every dialplan of `dir`, as the server's `plan_loader`
/// does (without its threads).
pub fn load_dir(
    dir: &Path,
    ctx: &CheckContext,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    load_sources(dir, read_sources(dir), ctx)
}

/// The repository root (the crate is at crates/dialplan).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The context the fixture corpus is checked against.
pub fn fixture_ctx() -> CheckContext {
    CheckContext {
        prompts: Some(set(&[
            "welcome",
            "main-menu",
            "support-menu",
            "invalid-option",
            "no-input",
            "enter-account",
            "opening-hours",
            "thank-you",
            "goodbye",
            "transferring",
            "closed",
        ])),
        queues: Some(set(&["operator", "billing", "support"])),
        global_operator: None,
        lookups: None,
    }
}
