//! Headless Chromium for the browser tests: Debian's Chromium and Node.js
//! (installed with apt when missing) and playwright-core from the committed
//! lock file in `tests/browser/` (`npm ci`, once per test process).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

fn run(cmd: &mut Command) -> bool {
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

fn as_root(args: &[&str]) -> Command {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = if root {
        Command::new(args[0])
    } else {
        let mut c = Command::new("sudo");
        c.arg(args[0]);
        c
    };
    c.args(&args[1..]).env("DEBIAN_FRONTEND", "noninteractive");
    c
}

/// Debian's Chromium and Node.js, installed with apt when missing.
pub fn ensure_tools() {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    if !run(Command::new("node").arg("--version").stdout(Stdio::null())) {
        missing.push("nodejs");
    }
    if !run(Command::new("npm").arg("--version").stdout(Stdio::null())) {
        missing.push("npm");
    }
    if missing.is_empty() {
        return;
    }
    eprintln!("installing {missing:?} with apt");
    assert!(
        run(&mut as_root(&["apt-get", "update", "-qq"])),
        "apt-get update failed"
    );
    let mut args = vec!["apt-get", "install", "-y", "-qq"];
    args.extend(&missing);
    assert!(
        run(&mut as_root(&args)),
        "apt-get install {missing:?} failed"
    );
}

/// playwright-core from the committed lock file.
pub fn ensure_node_modules(dir: &Path) {
    static ONCE: Mutex<()> = Mutex::new(());
    let _one_at_a_time = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    ensure_tools();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    eprintln!("installing playwright-core (npm ci)");
    assert!(
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)),
        "npm ci in {} failed",
        dir.display()
    );
}
