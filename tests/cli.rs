//! The command line as an admin uses it: `check`, `simulate`, `--version`,
//! and clear errors for bad configuration.

mod common;

use std::process::Command;

fn ringback(args: &[&str], cwd: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run ringback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_flag_and_command() {
    let (code, out, _) = ringback(&["--version"], &common::repo());
    assert_eq!(code, 0);
    assert!(out.starts_with("ringback "), "{out}");
    let (code, out, _) = ringback(&["version"], &common::repo());
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn shipped_demo_passes_check() {
    let (code, out, err) = ringback(&["check"], &common::repo());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("ok:"), "{err}");
}

#[test]
fn check_reports_file_line_col_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "[dialplan]\nnumbers = [\"1\"]\nstart = \"main\"\noperator = \"operator\"\n\n[nodes.main]\ntype = \"menu\"\nprompt = \"digit-1\"\noptions = { \"1\" = \"mian\" }\n",
    )
    .expect("write");
    let (code, out, _) = ringback(&["check", file.to_str().expect("utf8")], &common::repo());
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("mian"))
        .unwrap_or_else(|| panic!("no diagnostic about `mian`:\n{out}"));
    assert!(
        line.starts_with(&format!("{}:9:", file.display())),
        "{line}"
    );
    assert!(line.contains("did you mean `main`"), "{line}");
}

#[test]
fn check_rejects_zero_bound_to_something_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("zero.toml");
    std::fs::write(
        &file,
        "[dialplan]\nnumbers = [\"1\"]\nstart = \"main\"\noperator = \"operator\"\n\n[nodes.main]\ntype = \"menu\"\nprompt = \"digit-1\"\noptions = { \"0\" = \"bye\" }\n\n[nodes.bye]\ntype = \"hangup\"\n",
    )
    .expect("write");
    let (code, out, _) = ringback(&["check", file.to_str().expect("utf8")], &common::repo());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("zero.toml:9:") && out.contains("reserved"),
        "{out}"
    );
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ringback.toml");
    std::fs::write(&cfg, "[sip]\nlisten = \"not an address\"\n").expect("write");
    let (code, _, err) = ringback(
        &["--config", cfg.to_str().expect("utf8"), "serve"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ringback.toml:2:"), "{err}");
    let (code, _, err) = ringback(
        &["--config", "/nonexistent/ringback.toml", "serve"],
        dir.path(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/ringback.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn simulate_prints_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sim.toml");
    std::fs::write(
        &file,
        "[dialplan]\nnumbers = [\"1\"]\nstart = \"main\"\noperator = \"operator\"\n\n[nodes.main]\ntype = \"menu\"\nprompt = \"digit-1\"\noptions = { \"1\" = \"sub\" }\n\n[nodes.sub]\ntype = \"menu\"\nprompt = \"digit-2\"\noptions = { \"1\" = \"bye\" }\n\n[nodes.bye]\ntype = \"hangup\"\nprompt = \"goodbye\"\n",
    )
    .expect("write");
    let (code, out, err) = ringback(
        &["simulate", file.to_str().expect("utf8"), "--digits", "1,0"],
        &common::repo(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[main]") && out.contains("[sub]"), "{out}");
    assert!(
        out.contains("operator"),
        "zero-out from the sub-menu:\n{out}"
    );
    let (code, _, err) = ringback(
        &["simulate", file.to_str().expect("utf8"), "--digits", "1,x"],
        &common::repo(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("invalid input `x`"), "{err}");
}
