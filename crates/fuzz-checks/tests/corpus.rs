//! Replays the fuzz seed corpora and every minimised crasher through the same check
//! functions the fuzz targets call, so CI (stable, `cargo test --workspace`) catches a
//! regression without cargo-fuzz. A panic in a check fails the test with the file name.

// Test code plays the shell: it reads the corpus files (issue 12).
#![allow(clippy::disallowed_methods)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Regular files directly in `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// Runs every seed and regression file of `target`; returns how many seeds ran.
fn replay(target: &str) -> usize {
    let check = ringback_fuzz_checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no check for target {target}"));
    let seeds = files(&fuzz_dir().join("corpus").join(target));
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let mut failed = Vec::new();
    for file in seeds.iter().chain(&regressions) {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs panic: {failed:#?}"
    );
    seeds.len()
}

/// The seeds committed for each target (a corpus that silently became empty, or a
/// wrong path, must fail rather than test nothing).
fn committed_seeds(target: &str) -> usize {
    match target {
        "sip_message" => 12,
        "sdp" => 6,
        "rtp_dtmf" => 5,
        "dialplan" => 7,
        _ => 1,
    }
}

#[test]
fn every_target_has_a_corpus_directory_and_a_test() {
    for (target, _) in ringback_fuzz_checks::TARGETS {
        let src = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(src.is_file(), "{} missing", src.display());
        assert!(
            fuzz_dir().join("corpus").join(target).is_dir(),
            "no seed corpus for {target}"
        );
    }
    assert_eq!(ringback_fuzz_checks::TARGETS.len(), 4);
}

#[test]
fn sip_message_corpus() {
    let n = replay("sip_message");
    assert!(
        n >= committed_seeds("sip_message"),
        "only {n} sip_message seeds"
    );
}

#[test]
fn sdp_corpus() {
    let n = replay("sdp");
    assert!(n >= committed_seeds("sdp"), "only {n} sdp seeds");
}

#[test]
fn rtp_dtmf_corpus() {
    let n = replay("rtp_dtmf");
    assert!(n >= committed_seeds("rtp_dtmf"), "only {n} rtp_dtmf seeds");
}

#[test]
fn dialplan_corpus() {
    let n = replay("dialplan");
    assert!(n >= committed_seeds("dialplan"), "only {n} dialplan seeds");
}

/// The shipped dialplans as they are now (the seeds are copies that may age).
#[test]
fn shipped_dialplans() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dialplans");
    let plans = files(&shipped);
    assert!(!plans.is_empty(), "no dialplans in {}", shipped.display());
    for plan in plans {
        let data = std::fs::read(&plan).unwrap_or_else(|e| panic!("{}: {e}", plan.display()));
        ringback_fuzz_checks::dialplan(&data);
    }
}

/// The seeds must reach past the first parser, or the fuzzer starts from the shallow end:
/// every SIP seed but the unknown method parses, the basic SDP negotiates, and the
/// shipped dialplans load.
#[test]
fn seeds_reach_the_deep_paths() {
    for file in files(&fuzz_dir().join("corpus/sip_message")) {
        let data = std::fs::read(&file).unwrap_or_default();
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("unknown_method") {
            continue;
        }
        let first = match ringback_sip::message::frame_stream(&data, 65_535) {
            ringback_sip::message::Frame::KeepAlive(n, _) => data.get(n..).unwrap_or_default(),
            _ => &data[..],
        };
        if let Err(e) = ringback_sip::message::parse(first) {
            panic!("seed {name} does not parse: {e}");
        }
    }
    let sdp = std::fs::read(fuzz_dir().join("corpus/sdp/basic_crlf.sdp")).unwrap_or_default();
    let offer = ringback_media::sdp::parse(&String::from_utf8_lossy(&sdp));
    let offer = offer.unwrap_or_else(|e| panic!("basic SDP seed: {e}"));
    let codecs = [ringback_media::Codec::Pcmu];
    assert!(ringback_media::sdp::negotiate(&offer, &codecs).is_ok());
    for name in ["main.toml", "support-direct.toml", "default.toml"] {
        let path = fuzz_dir().join("corpus/dialplan").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let ctx = ringback_dialplan::CheckContext::default();
        if let Err(d) = ringback_dialplan::load_str(&path, &text, &ctx) {
            panic!("seed {name} does not load: {d:?}");
        }
    }
}
