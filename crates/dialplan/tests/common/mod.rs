//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;

use ringback_dialplan::CheckContext;

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
    }
}
