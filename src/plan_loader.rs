//! Dialplan files: the shell half of [`ringback_dialplan`]'s loader.
//!
//! The dialplan crate checks texts it is handed and never touches a file or
//! a thread. This module lists the dialplan directory, reads the files and
//! runs the checks of changed files on one thread per core.

use std::path::{Path, PathBuf};

use ringback_dialplan::{
    load_sources_cached, load_str, read_error, CheckContext, CheckJob, CheckedFile, Diagnostic,
    Diagnostics, Dialplan, DialplanSet, LoadCache, SourceFile,
};

use crate::prompt_loader::parallel_map;

/// Reads and checks one dialplan file (see [`load_str`]).
pub fn load_file(
    path: &Path,
    ctx: &CheckContext,
) -> Result<(Dialplan, Vec<Diagnostic>), Diagnostics> {
    let source = std::fs::read_to_string(path).map_err(|e| vec![read_error(path, &e)])?;
    load_str(path, &source, ctx)
}

/// Every `*.toml` file directly in `dir` (not recursive), read.
fn read_sources(dir: &Path) -> Result<Vec<SourceFile>, Diagnostics> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![Diagnostic::file_error(
            dir,
            format!("cannot read dialplan directory: {e}"),
        )]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|path| SourceFile {
            text: std::fs::read_to_string(&path),
            path,
        })
        .collect())
}

/// Loads every `*.toml` file of a directory (not recursive) into a
/// [`DialplanSet`] (see [`ringback_dialplan::load_sources`]).
///
/// All errors of all files are collected (not just the first file's), plus
/// cross-file errors: a number claimed by two files is reported at both
/// places. `Ok` carries the set and all warnings.
pub fn load_dir(
    dir: &Path,
    ctx: &CheckContext,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    load_dir_cached(dir, ctx, &mut LoadCache::default())
}

/// [`load_dir`] with a cache: every file is read, but one whose text is the
/// same as at the previous load (with the same [`CheckContext`]) reuses that
/// load's result, plan and diagnostics, instead of being parsed and checked
/// again. Changed and new files are parsed and checked in parallel (one
/// thread per core). The result is exactly what [`load_dir`] would return.
/// The cache is updated whether or not the load succeeds.
pub fn load_dir_cached(
    dir: &Path,
    ctx: &CheckContext,
    cache: &mut LoadCache,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    let files = read_sources(dir)?;
    load_sources_cached(dir, files, ctx, cache, check_in_parallel)
}

fn check_in_parallel(jobs: Vec<CheckJob<'_>>) -> Vec<CheckedFile> {
    parallel_map(jobs, CheckJob::run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

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

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn unreadable_files_and_empty_directories_are_reported_not_panicked() {
        let dir = TempDir::new().unwrap();
        let dir = dir.path();
        let missing = dir.join("nope.toml");
        let errs = load_file(&missing, &CheckContext::default()).expect_err("missing");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 0);
        assert!(errs[0].to_string().starts_with(&format!(
            "{}: error: cannot read dialplan:",
            missing.display()
        )));
        let errs = load_dir(dir, &CheckContext::default()).expect_err("empty");
        assert_eq!(
            errs[0].to_string(),
            format!(
                "{}: error: no dialplans: the directory has no *.toml files",
                dir.display()
            )
        );
        let errs = load_dir(&dir.join("absent"), &CheckContext::default()).expect_err("absent");
        assert!(errs[0]
            .message
            .starts_with("cannot read dialplan directory"));
        // A `*.toml` that is not a readable file (here: a directory) is skipped.
        std::fs::create_dir(dir.join("sub.toml")).unwrap();
        assert!(load_dir(dir, &CheckContext::default()).is_err());
    }

    #[test]
    fn load_dir_collects_every_file_and_ignores_other_files() {
        let dir = TempDir::new().unwrap();
        let dir = dir.path();
        write(dir, "a.toml", OK);
        write(dir, "notes.txt", "not a dialplan");
        write(
            dir,
            "b.toml",
            &OK.replace("\"1000\"", "\"2000\"")
                .replace("start = \"main\"", "start = \"mian\""),
        );
        write(dir, "c.toml", "[dialplan\n");
        let errs = load_dir(dir, &CheckContext::default()).expect_err("b and c are broken");
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
        assert!(errs[0].file.starts_with(dir), "names the file as found");
        // fixed: the set loads, routing by number, warnings returned
        write(dir, "b.toml", &OK.replace("\"1000\"", "\"2000\""));
        std::fs::remove_file(dir.join("c.toml")).unwrap();
        let (set, warnings) = load_dir(dir, &CheckContext::default()).expect("clean");
        assert_eq!(set.len(), 2);
        assert_eq!(warnings.len(), 2);
        assert!(set.for_number("1000").unwrap().file.ends_with("a.toml"));
        assert!(set.for_number("2000").unwrap().file.ends_with("b.toml"));
        assert!(set.for_number("3000").is_none(), "no catch-all");
    }

    #[test]
    fn cached_load_reuses_unchanged_files_and_sees_every_change() {
        let dir = TempDir::new().unwrap();
        let dir = dir.path();
        let ctx = CheckContext::default();
        let mut cache = LoadCache::default();
        // Enough files that the parallel path runs on a multi-core machine.
        for n in 0..8 {
            write(
                dir,
                &format!("p{n}.toml"),
                &OK.replace("\"1000\"", &format!("\"{}\"", 1000 + n)),
            );
        }
        let (first, _) = load_dir_cached(dir, &ctx, &mut cache).expect("clean");
        assert_eq!((first.len(), cache.checked()), (8, 8));
        let (second, _) = load_dir_cached(dir, &ctx, &mut cache).expect("clean");
        assert_eq!(cache.checked(), 0);
        for (x, y) in first.plans().zip(second.plans()) {
            assert!(std::sync::Arc::ptr_eq(x, y));
        }
        // One changed file: only it is checked, and the result is the
        // uncached one.
        write(
            dir,
            "p3.toml",
            &OK.replace("\"1000\"", "\"1003\"")
                .replace("\"1\" = \"bye\"", "\"2\" = \"bye\""),
        );
        let (third, w) = load_dir_cached(dir, &ctx, &mut cache).expect("clean");
        assert_eq!(cache.checked(), 1);
        let (plain, plain_w) = load_dir(dir, &ctx).expect("clean");
        assert_eq!(w, plain_w);
        let a: Vec<_> = third.plans().map(|p| (**p).clone()).collect();
        let b: Vec<_> = plain.plans().map(|p| (**p).clone()).collect();
        assert_eq!(a, b);
        // A file that cannot be read any more is an error, not a stale plan.
        std::fs::write(dir.join("p5.toml"), b"\xff not UTF-8").unwrap();
        let errs = load_dir_cached(dir, &ctx, &mut cache).expect_err("p5 unreadable");
        let errors: Vec<String> = errs
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "{}: error: cannot read dialplan:",
                dir.join("p5.toml").display()
            )),
            "{errors:?}"
        );
        // A file that goes away takes its plan with it.
        std::fs::remove_file(dir.join("p5.toml")).unwrap();
        let (fourth, _) = load_dir_cached(dir, &ctx, &mut cache).expect("clean");
        assert_eq!(fourth.len(), 7);
        assert!(fourth.for_number("1005").is_none());
    }
}
