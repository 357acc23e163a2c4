//! The shipped demo (dialplans/ + prompts/) must check clean and route the
//! demo numbers; the prompts must be in the formats the server expects.

// Tests play the shell: they read the shipped files.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::HashSet;

use common::{load_dir, load_file};
use ringback_dialplan::*;

fn prompt_names() -> HashSet<String> {
    std::fs::read_dir(common::repo().join("prompts"))
        .expect("prompts/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

fn ctx() -> CheckContext {
    CheckContext {
        prompts: Some(prompt_names()),
        queues: Some(common::set(&["operator", "billing", "support"])),
        global_operator: None,
        lookups: Some(common::set(&["orders"])),
    }
}

#[test]
fn shipped_dialplans_check_clean_against_shipped_prompts() {
    let dir = common::repo().join("dialplans");
    let (set, warnings) = match load_dir(&dir, &ctx()) {
        Ok(x) => x,
        Err(e) => panic!(
            "{}",
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
    let main = set.for_number("1000").expect("1000 is answered");
    assert_eq!(main.name, "Acme Corp main line");
    assert_eq!(main.start, "hours");
    assert_eq!(main.timezone, chrono_tz::America::New_York);
    assert!(std::sync::Arc::ptr_eq(
        &main,
        &set.for_number("+15550100").expect("second number")
    ));
    assert_eq!(
        set.for_number("2000").expect("direct line").name,
        "Acme Corp support direct line"
    );
    // anything else reaches the catch-all plan
    assert_eq!(
        set.for_number("5555").expect("catch-all").name,
        "Acme Corp catch-all"
    );
    let mut files: Vec<String> = set
        .plans()
        .map(|p| p.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["default.toml", "main.toml", "support-direct.toml"]);
}

#[test]
fn the_demo_uses_a_depth_three_menu_and_all_node_types_it_promises() {
    let dir = common::repo().join("dialplans");
    let plan = load_file(&dir.join("main.toml"), &ctx()).expect("clean").0;
    let types: HashSet<&str> = plan.nodes.values().map(Node::type_name).collect();
    for t in [
        "hours", "menu", "play", "queue", "gather", "set", "callback", "hangup",
    ] {
        assert!(types.contains(t), "main.toml has no {t} node");
    }
    let Some(Node::Menu(main)) = plan.node("main") else {
        panic!("main is a menu")
    };
    assert!(!main.options.contains_key(&'0'), "0 is implicit (zero-out)");
}

/// (sample rate, channels, bits per sample) from a RIFF/WAVE header.
fn wav_format(bytes: &[u8]) -> Option<(u32, u16, u16)> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        if id == b"fmt " {
            let f = bytes.get(pos + 8..pos + 8 + 16)?;
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let bits = u16::from_le_bytes([f[14], f[15]]);
            return Some((rate, channels, bits));
        }
        pos += 8 + len + (len & 1);
    }
    None
}

#[test]
fn prompts_are_mono_16_bit_telephone_rate_except_welcome_and_small() {
    let dir = common::repo().join("prompts");
    let names = prompt_names();
    let mut total = 0u64;
    for name in &names {
        let bytes = std::fs::read(dir.join(format!("{name}.wav"))).expect("read");
        total += bytes.len() as u64;
        let fmt = wav_format(&bytes).unwrap_or_else(|| panic!("{name}.wav is not WAVE"));
        let rate = if name == "welcome" { 22050 } else { 8000 };
        assert_eq!(fmt, (rate, 1, 16), "{name}.wav");
    }
    // A budget against accidental bloat (a stray 44.1 kHz stereo file), with
    // room for the agent and callback prompts and the `say` nodes' number
    // prompts (about 1 MB of them): 16-bit 8 kHz is 16 KB/s.
    assert!(total < 4 * 1024 * 1024, "prompts total {total} bytes");
    for format in SayFormat::ALL {
        for p in format.prompts() {
            assert!(
                names.contains(&p),
                "say format {format} needs prompts/{p}.wav"
            );
        }
    }
    let mut required: Vec<String> = (0..10).map(|d| format!("digit-{d}")).collect();
    required.extend(
        [
            "you-are-caller",
            "minutes",
            "estimated-wait",
            "please-hold",
            "goodbye",
            "invalid-option",
            "no-input",
            "transferring",
            "transfer-failed",
            "callback-offer",
            "callback-confirm",
            "hold-music",
            "welcome",
        ]
        .map(String::from),
    );
    for r in required {
        assert!(names.contains(&r), "missing prompt {r}");
    }
    // README documents every prompt
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    for name in &names {
        if !name.starts_with("digit-") {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README misses {name}"
            );
        }
    }
}
