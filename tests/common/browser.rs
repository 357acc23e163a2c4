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

/// A browser test script (`tests/browser/<script>`, playwright-core in
/// headless Chromium) that prints one JSON event per line, and the events
/// so far. Killed by PID when dropped.
pub struct Page {
    child: std::process::Child,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Page {
    /// Start `node tests/browser/<script>` with `env`, its fake microphone
    /// playing a tone of `mic_tone` Hz (`TONE_WAV`, written into `dir`).
    pub fn open(
        script: &str,
        srv: &super::Server,
        env: &[(&str, String)],
        mic_tone: f64,
        dir: &Path,
    ) -> Page {
        use std::io::{BufRead, BufReader};
        let browser_dir = super::repo().join("tests/browser");
        ensure_node_modules(&browser_dir);
        let wav = dir.join("mic-tone.wav");
        write_tone(&wav, mic_tone);
        let mut cmd = Command::new("node");
        cmd.arg(browser_dir.join(script))
            .current_dir(&browser_dir)
            .env("RINGBACK_URL", format!("http://{}", srv.api))
            .env("TONE_WAV", &wav)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn node");
        let (tx, events) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[page] {line}");
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[page] {line}");
            }
        });
        Page {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The next event named `name` within `secs`; fails on an `error`.
    pub fn expect(&mut self, name: &str, secs: u64, srv: &super::Server) -> serde_json::Value {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == "error" {
                        panic!("browser: {}\nringback log:\n{}", v["message"], srv.log());
                    }
                    if v["event"] == name {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "browser: no `{name}` within {secs} s (saw {:?})\nringback log:\n{}",
                    self.seen,
                    srv.log()
                ),
            }
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 16-bit mono 48 kHz WAV of `freq` Hz for Chromium's fake microphone
/// (it loops the file), written by `tests/peers/audio.py`.
pub fn write_tone(path: &Path, freq: f64) {
    let status = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys; sys.path.insert(0, {dir:?}); import audio; audio.write_tone({path:?}, {freq}, 10, rate=48000, amplitude=0.4)",
            dir = super::repo().join("tests/peers").display().to_string(),
            path = path.display().to_string(),
        ))
        .status()
        .expect("python3");
    assert!(status.success(), "could not write the tone WAV");
}
