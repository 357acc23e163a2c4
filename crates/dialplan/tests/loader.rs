//! Loader API: texts, sets of files, results, versions and message format.
//! (Listing and reading the directory is the server's: src/plan_loader.rs.)

// Tests play the shell: one reads the shipped demo.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ringback_dialplan::*;

const OK: &str = r#"
[dialplan]
numbers = ["1000"]
start = "main"
operator = "operator"

[nodes.main]
type = "menu"
prompt = "main-menu"
options = { "1" = "bye" }

[nodes.bye]
type = "hangup"
prompt = "goodbye"

[nodes.spare]
type = "hangup"
"#;

/// A dialplan directory in memory: file name → text, as the server would
/// read it.
#[derive(Default)]
struct Dir(BTreeMap<String, String>);

impl Dir {
    fn path(&self) -> &'static Path {
        Path::new("plans")
    }

    fn write(&mut self, name: &str, text: impl Into<String>) {
        self.0.insert(name.to_string(), text.into());
    }

    fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// The files, in reverse name order (the loader must sort them).
    fn files(&self) -> Vec<SourceFile> {
        self.0
            .iter()
            .rev()
            .map(|(name, text)| SourceFile::new(self.path().join(name), text.clone()))
            .collect()
    }
}

#[test]
fn load_str_fills_defaults_and_returns_warnings_with_the_plan() {
    let (plan, warnings) = load_str(
        Path::new("dialplans/front.toml"),
        OK,
        &CheckContext::default(),
    )
    .expect("ok");
    assert_eq!(plan.name, "front", "name defaults to the file stem");
    assert_eq!(plan.timezone, chrono_tz::UTC);
    assert_eq!(plan.numbers, ["1000"]);
    assert_eq!(plan.operator.as_deref(), Some("operator"));
    assert_eq!(plan.operator_queue(Some("g")), Some("operator"));
    assert_eq!(plan.file, Path::new("dialplans/front.toml"));
    let Some(Node::Menu(m)) = plan.node("main") else {
        panic!("menu")
    };
    assert_eq!(m.timeout, std::time::Duration::from_secs(5));
    assert_eq!(m.max_retries, 3);
    assert_eq!(m.on_fail, None);
    assert_eq!(
        warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["dialplans/front.toml:16:8: warning: node `spare` is unreachable from start node `main`"]
    );
}

#[test]
fn version_is_a_short_stable_content_hash() {
    let a = load_str(Path::new("a.toml"), OK, &CheckContext::default())
        .expect("ok")
        .0;
    let b = load_str(Path::new("b.toml"), OK, &CheckContext::default())
        .expect("ok")
        .0;
    let c = load_str(
        Path::new("a.toml"),
        &OK.replace("\"1000\"", "\"1001\""),
        &CheckContext::default(),
    )
    .expect("ok")
    .0;
    assert_eq!(a.version.len(), 12);
    assert!(a.version.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a.version, b.version);
    assert_ne!(a.version, c.version);
    assert_eq!(content_version(""), "cbf29ce48422");
}

#[test]
fn errors_come_with_warnings_sorted_and_in_compiler_format() {
    let src = OK.replace(
        "prompt = \"goodbye\"",
        "prompt = \"goodbye\"\nnext = \"main\"",
    );
    let errs = load_str(Path::new("d/x.toml"), &src, &CheckContext::default()).expect_err("bad");
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "d/x.toml:15:1: error: unknown key `next` in node `bye` (hangup); allowed keys: type, prompt",
            "d/x.toml:17:8: warning: node `spare` is unreachable from start node `main`",
        ]
    );
    assert!(errs[0].is_error() && !errs[1].is_error());
}

#[test]
fn context_sets_are_only_checked_when_known() {
    // None: unknown, not checked
    assert!(load_str(Path::new("x.toml"), OK, &CheckContext::default()).is_ok());
    // Some(empty): there are none, every reference is reported
    let ctx = CheckContext {
        prompts: Some(Default::default()),
        queues: Some(Default::default()),
        global_operator: None,
        lookups: None,
    };
    let errs = load_str(Path::new("x.toml"), OK, &ctx).expect_err("nothing exists");
    let msgs: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.contains(&"prompt `main-menu` not found (no prompts/main-menu.wav)"),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&"queue `operator` is not defined in ringback.toml; known queues: "),
        "{msgs:?}"
    );
}

#[test]
fn unreadable_files_and_empty_sets_are_reported_not_panicked() {
    let dir = Path::new("plans");
    let missing = dir.join("nope.toml");
    let gone = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
    let d = read_error(&missing, &gone());
    assert_eq!(d.line, 0);
    assert!(d.is_error());
    assert_eq!(
        d.to_string(),
        format!("{}: error: cannot read dialplan: gone", missing.display())
    );
    // In a set, an unreadable file is one more error beside the others'.
    let files = vec![
        SourceFile::new(dir.join("a.toml"), OK),
        SourceFile {
            path: missing.clone(),
            text: Err(gone()),
        },
    ];
    let errs = load_sources(dir, files, &CheckContext::default()).expect_err("unreadable");
    assert_eq!(
        errs.iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [d.to_string()]
    );
    let errs = load_sources(dir, Vec::new(), &CheckContext::default()).expect_err("empty");
    assert_eq!(
        errs[0].to_string(),
        format!(
            "{}: error: no dialplans: the directory has no *.toml files",
            dir.display()
        )
    );
}

#[test]
fn load_sources_collects_every_file() {
    let mut dir = Dir::default();
    dir.write("a.toml", OK);
    dir.write(
        "b.toml",
        OK.replace("\"1000\"", "\"2000\"")
            .replace("start = \"main\"", "start = \"mian\""),
    );
    dir.write("c.toml", "[dialplan\n");
    let errs = load_sources(dir.path(), dir.files(), &CheckContext::default())
        .expect_err("b and c are broken");
    let shown: Vec<String> = errs
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{}: {}",
                d.file.file_name().unwrap().to_string_lossy(),
                d.line,
                d.col,
                d.severity
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "a.toml:16:8: warning",
            "b.toml:4:9: error",
            "c.toml:1:10: error"
        ]
    );
    // fixed: the set loads, routing by number, warnings returned
    dir.write("b.toml", OK.replace("\"1000\"", "\"2000\""));
    dir.remove("c.toml");
    let (set, warnings) =
        load_sources(dir.path(), dir.files(), &CheckContext::default()).expect("clean");
    assert_eq!(set.len(), 2);
    assert_eq!(warnings.len(), 2);
    assert!(set.for_number("1000").unwrap().file.ends_with("a.toml"));
    assert!(set.for_number("2000").unwrap().file.ends_with("b.toml"));
    assert!(set.for_number("3000").is_none(), "no catch-all");
    let files: Vec<&Path> = set.plans().map(|p| p.file.as_path()).collect();
    assert_eq!(
        files,
        [Path::new("plans/a.toml"), Path::new("plans/b.toml")],
        "in file-name order"
    );
}

#[test]
fn diagnostics_format_and_order() {
    let mut v = vec![
        Diagnostic {
            file: "b.toml".into(),
            line: 1,
            col: 1,
            message: "x".into(),
            severity: Severity::Error,
        },
        Diagnostic {
            file: "a.toml".into(),
            line: 9,
            col: 2,
            message: "y".into(),
            severity: Severity::Warning,
        },
        Diagnostic {
            file: "a.toml".into(),
            line: 2,
            col: 7,
            message: "z".into(),
            severity: Severity::Error,
        },
    ];
    sort_diagnostics(&mut v);
    let shown: Vec<String> = v.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "a.toml:2:7: error: z",
            "a.toml:9:2: warning: y",
            "b.toml:1:1: error: x"
        ]
    );
    assert!(common::fixture_ctx().prompts.is_some());
}

/// Whatever an editor saves half-way, the loader answers with diagnostics,
/// never a panic: every truncation of the shipped main plan is loaded.
#[test]
fn every_truncation_of_the_demo_loads_without_panicking() {
    let path = common::repo().join("dialplans/main.toml");
    let src = std::fs::read_to_string(&path).expect("demo");
    let ctx = common::fixture_ctx();
    let mut failures = 0;
    for (i, _) in src.char_indices() {
        if let Err(errs) = load_str(&path, &src[..i], &ctx) {
            assert!(errs.iter().any(Diagnostic::is_error));
            for d in &errs {
                assert!(d.line >= 1 && d.col >= 1, "{d}");
                assert!(d.line <= src[..i].lines().count().max(1), "{d}");
            }
            failures += 1;
        }
    }
    assert!(failures > 0);
    assert!(load_str(&path, &src, &CheckContext::default()).is_ok());
}

/// Runs the jobs last to first on the calling thread: results may come back
/// in any order.
fn reversed(jobs: Vec<CheckJob<'_>>) -> Vec<CheckedFile> {
    jobs.into_iter().rev().map(CheckJob::run).collect()
}

/// Runs nothing: the loader checks what the caller dropped itself.
fn dropped(_: Vec<CheckJob<'_>>) -> Vec<CheckedFile> {
    Vec::new()
}

/// The cached load of `dir`, checked to give the same result as
/// `load_sources`, with the same warnings and errors.
fn load_cached(
    dir: &Dir,
    ctx: &CheckContext,
    cache: &mut LoadCache,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    load_sources_cached(dir.path(), dir.files(), ctx, cache, reversed)
}

/// The same result as `load_sources`, with the same warnings and errors.
fn same_as_uncached(dir: &Dir, ctx: &CheckContext, cache: &mut LoadCache) -> DialplanSet {
    let cached = load_cached(dir, ctx, cache);
    let plain = load_sources(dir.path(), dir.files(), ctx);
    match (cached, plain) {
        (Ok((set, w)), Ok((plain_set, plain_w))) => {
            assert_eq!(w, plain_w);
            let a: Vec<_> = set.plans().map(|p| (**p).clone()).collect();
            let b: Vec<_> = plain_set.plans().map(|p| (**p).clone()).collect();
            assert_eq!(a, b);
            set
        }
        (Err(e), Err(plain_e)) => {
            assert_eq!(e, plain_e);
            DialplanSet::default()
        }
        (a, b) => panic!("cached {:?} vs plain {:?}", a.is_ok(), b.is_ok()),
    }
}

#[test]
fn cached_load_reuses_unchanged_files_and_sees_every_change() {
    let mut dir = Dir::default();
    let ctx = CheckContext::default();
    let mut cache = LoadCache::default();
    dir.write("a.toml", OK);
    dir.write("b.toml", OK.replace("\"1000\"", "\"2000\""));
    let first = same_as_uncached(&dir, &ctx, &mut cache);
    assert_eq!((first.len(), cache.checked()), (2, 2));

    // Nothing changed: nothing parsed, the very same plans.
    let second = same_as_uncached(&dir, &ctx, &mut cache);
    assert_eq!(cache.checked(), 0);
    for (x, y) in first.plans().zip(second.plans()) {
        assert!(std::sync::Arc::ptr_eq(x, y));
    }

    // Changed: only that file is checked, and the new text is what serves.
    dir.write(
        "b.toml",
        OK.replace("\"1000\"", "\"2000\"")
            .replace("\"1\" = \"bye\"", "\"2\" = \"bye\""),
    );
    let third = same_as_uncached(&dir, &ctx, &mut cache);
    assert_eq!(cache.checked(), 1);
    let b = third.for_number("2000").unwrap();
    assert_ne!(b.version, first.for_number("2000").unwrap().version);
    assert!(std::sync::Arc::ptr_eq(
        &third.for_number("1000").unwrap(),
        &first.for_number("1000").unwrap()
    ));

    // Added and removed files.
    dir.write("c.toml", OK.replace("\"1000\"", "\"3000\""));
    let fourth = same_as_uncached(&dir, &ctx, &mut cache);
    assert_eq!((fourth.len(), cache.checked()), (3, 1));
    dir.remove("a.toml");
    let fifth = same_as_uncached(&dir, &ctx, &mut cache);
    assert_eq!((fifth.len(), cache.checked()), (2, 0));
    assert!(fifth.for_number("1000").is_none());

    // An invalid edit: the same file:line:col errors as without a cache; a
    // second file claiming a reused file's number is still a cross-file error.
    dir.write(
        "b.toml",
        OK.replace("\"1000\"", "\"2000\"")
            .replace("start = \"main\"", "start = \"mian\""),
    );
    dir.write("d.toml", OK.replace("\"1000\"", "\"3000\""));
    let errs = load_cached(&dir, &ctx, &mut cache).expect_err("b broken, 3000 twice");
    assert!(errs
        .iter()
        .any(|d| d.file.ends_with("b.toml") && d.line == 4));
    assert!(errs
        .iter()
        .any(|d| d.file.ends_with("c.toml") && d.message.contains("3000")));
    same_as_uncached(&dir, &ctx, &mut cache);
    dir.remove("d.toml");
    dir.write("b.toml", OK.replace("\"1000\"", "\"2000\""));
    let fixed = same_as_uncached(&dir, &ctx, &mut cache);
    assert_eq!(fixed.len(), 2);

    // A different check context (a prompt went away) checks everything again.
    let ctx2 = CheckContext {
        prompts: Some(["goodbye".to_string()].into_iter().collect()),
        ..CheckContext::default()
    };
    let errs = load_cached(&dir, &ctx2, &mut cache).expect_err("main-menu missing");
    assert_eq!(cache.checked(), 2);
    assert!(errs.iter().any(|d| d.message.contains("main-menu")));
    same_as_uncached(&dir, &ctx2, &mut cache);

    // A caller that runs none of the jobs still gets the full result.
    dir.write("b.toml", OK.replace("\"1000\"", "\"2001\""));
    let (set, _) =
        load_sources_cached(dir.path(), dir.files(), &ctx, &mut cache, dropped).expect("clean");
    assert_eq!(cache.checked(), 2);
    assert_eq!(set.len(), 2);
    assert!(set.for_number("2001").is_some() && set.for_number("3000").is_some());
}
