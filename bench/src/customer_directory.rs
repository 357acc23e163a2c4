//! `customer-directory`: what the customer directory costs with many
//! customers (issue 15).
//!
//! ```text
//! customer-directory --ringback target/release/ringback --work /tmp/dir \
//!     [--customers 100000] [--lookups 1000000] [--prompts prompts] [--dialplans dialplans] \
//!     [--out bench/results/customer-directory.json]
//! ```
//!
//! 1. Writes a CSV of `--customers` customers (every third with a second
//!    number, every fiftieth a VIP, all with an account, a language and a
//!    tag).
//! 2. In this process, with the server's own code (`ringback-customers`):
//!    parsing the file, building the index, and the cost of one caller
//!    lookup as a call pays it (a read lock and the index's probes), for a
//!    number as stored, a number in the other spelling (no `+`), and a
//!    number nobody has; `--lookups` of each, numbers drawn at random.
//! 3. `ringback customers import` of the file into a fresh SQLite store:
//!    wall time and the process's peak RSS; then `export`: wall time, and
//!    the export has every customer.
//! 4. `ringback serve` on an empty store and on the imported one: RSS
//!    once the directory is loaded (the difference is the directory in
//!    memory), `startup_ms` (the directory loads after it, in the
//!    background), and the server's own time to load the directory.
//!
//! Only processes this program started are signalled, by PID.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod procfs;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use common::{ms_since, Args};
use ringback_customers::{csv_format, Index};
use serde_json::{json, Value};

const USAGE: &str = "usage: customer-directory --ringback BIN --work DIR [--customers 100000] \
[--lookups 1000000] [--prompts DIR] [--dialplans DIR] [--out FILE]";

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("customer-directory: {msg}");
    std::process::exit(1);
}

fn number(i: u64) -> String {
    format!("+1555{i:07}")
}

fn write_csv(path: &Path, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap_or_else(|e| fail(e)));
    let mut w = |s: String| f.write_all(s.as_bytes()).unwrap_or_else(|e| fail(e));
    w("number,name,language,vip,account,notes,tags,numbers\n".into());
    for i in 0..n {
        let more = if i % 3 == 0 {
            number(n + i)
        } else {
            String::new()
        };
        let vip = if i % 50 == 0 { "yes" } else { "" };
        w(format!(
            "{},Customer {i} Example,en,{vip},ACC-{i:07},,{},{more}\n",
            number(i),
            if i % 7 == 0 { "gold" } else { "" }
        ));
    }
    f.flush().unwrap_or_else(|e| fail(e));
}

/// A small xorshift: the numbers looked up, reproducibly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Nanoseconds per lookup of `callers` (found is checked).
fn time_lookups(index: &RwLock<Index>, callers: &[String], expect_found: bool) -> f64 {
    let t0 = Instant::now();
    let mut found = 0usize;
    for c in callers {
        let g = index.read().unwrap_or_else(|p| p.into_inner());
        found += usize::from(g.lookup(c).is_some());
    }
    let ns = t0.elapsed().as_nanos() as f64 / callers.len().max(1) as f64;
    let want = if expect_found { callers.len() } else { 0 };
    if found != want {
        fail(format!(
            "{found} of {} lookups found a customer, expected {want}",
            callers.len()
        ));
    }
    ns
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(e))
}

/// Peak RSS (KiB) of this program's waited-for children so far.
fn children_maxrss_kib() -> i64 {
    // SAFETY: getrusage(2) fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss
}

fn cli(ringback: &Path, cfg: &Path, args: &[&str]) -> (f64, String, String) {
    let t0 = Instant::now();
    let out = Command::new(ringback)
        .arg("--config")
        .arg(cfg)
        .arg("customers")
        .args(args)
        .output()
        .unwrap_or_else(|e| fail(e));
    let ms = ms_since(t0);
    if !out.status.success() {
        fail(format!(
            "customers {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    (
        ms,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Start a server on `cfg`'s store; (RSS KiB once the directory is
/// loaded, startup_ms, the directory's load time in ms and its customers,
/// from the server's log).
fn serve(ringback: &Path, cfg: &Path, log: &Path) -> (u64, f64, f64, u64) {
    let logf = std::fs::File::create(log).unwrap_or_else(|e| fail(e));
    let mut child = Command::new(ringback)
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .env("RINGBACK_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logf))
        .spawn()
        .unwrap_or_else(|e| fail(e));
    let stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
    let mut ready = String::new();
    BufReader::new(stdout)
        .read_line(&mut ready)
        .unwrap_or_else(|e| fail(e));
    let field = |text: &str, key: &str| -> f64 {
        text.split(key)
            .nth(1)
            .and_then(|r| r.split(|c: char| !(c.is_ascii_digit() || c == '.')).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    // The directory loads in the background after the ready line.
    let until = Instant::now() + Duration::from_secs(60);
    let loaded = loop {
        let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
        if let Some(l) = text
            .lines()
            .find(|l| l.contains("customer directory loaded"))
        {
            break l.to_string();
        }
        if Instant::now() > until {
            fail(format!("the directory did not load; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    let rss = procfs::rss_kib(child.id()).unwrap_or(0);
    // SAFETY: kill(2) on the PID of a child this program spawned and has
    // not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    let load = field(&loaded, "took_ms=");
    (
        rss,
        field(&ready, "startup_ms="),
        load,
        field(&loaded, "customers=") as u64,
    )
}

/// The text without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn config(work: &Path, name: &str, db: &Path, prompts: &Path, dialplans: &Path) -> PathBuf {
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let text = format!(
        "operator_queue = \"operator\"\n[sip]\nlisten = \"{sip}\"\n[rtp]\nip = \"127.0.0.1\"\n\
         port_min = 10000\nport_max = 11999\n[api]\nlisten = \"{api}\"\nopen = true\n\
         [dialplans]\ndir = \"{}\"\nwatch = false\n[prompts]\ndir = \"{}\"\n\
         [database]\nurl = \"sqlite://{}\"\n[queues.operator]\n[queues.billing]\n[queues.support]\n",
        dialplans.display(),
        prompts.display(),
        db.display()
    );
    let path = work.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap_or_else(|e| fail(e));
    path
}

fn main() {
    let args = Args::parse(USAGE);
    let ringback = PathBuf::from(args.need("ringback"));
    let work = PathBuf::from(args.need("work"));
    let n: u64 = args.num("customers", 100_000);
    let lookups: usize = args.num("lookups", 1_000_000);
    // Absolute: the configurations live in the work directory.
    let absolute = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|e| fail(format!("{p}: {e}")));
    let prompts = absolute(args.get("prompts").unwrap_or("prompts"));
    let dialplans = absolute(args.get("dialplans").unwrap_or("dialplans"));
    std::fs::create_dir_all(&work).unwrap_or_else(|e| fail(e));
    let csv = work.join("customers.csv");
    write_csv(&csv, n);
    let bytes = std::fs::read(&csv).unwrap_or_else(|e| fail(e));

    // 2. In process.
    let t0 = Instant::now();
    let rows = csv_format::parse(&bytes).unwrap_or_else(|e| fail(format!("{:?}", e.first())));
    let parse_ms = ms_since(t0);
    let rss0 = procfs::rss_kib(std::process::id()).unwrap_or(0);
    let t0 = Instant::now();
    let index = Index::of(
        rows.iter()
            .enumerate()
            .map(|(i, r)| (i as i64 + 1, &r.customer)),
    );
    let index_ms = ms_since(t0);
    let rss1 = procfs::rss_kib(std::process::id()).unwrap_or(0);
    let numbers = index.numbers();
    let index = RwLock::new(index);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let hits: Vec<String> = (0..lookups).map(|_| number(rng.below(n))).collect();
    let other: Vec<String> = hits
        .iter()
        .map(|h| h.trim_start_matches('+').to_string())
        .collect();
    let misses: Vec<String> = (0..lookups).map(|_| number(3 * n + rng.below(n))).collect();
    time_lookups(&index, &hits[..lookups.min(10_000)], true); // warm-up
    let hit_ns = time_lookups(&index, &hits, true);
    let other_ns = time_lookups(&index, &other, true);
    let miss_ns = time_lookups(&index, &misses, false);
    drop(rows);

    // 3. The CLI.
    let db = work.join("directory.db");
    let _ = std::fs::remove_file(&db);
    let cfg = config(&work, "full", &db, &prompts, &dialplans);
    let (import_ms, _, import_err) = cli(&ringback, &cfg, &["import", csv.to_str().unwrap_or("")]);
    let import_rss = children_maxrss_kib();
    let (export_ms, exported, _) = cli(&ringback, &cfg, &["export"]);
    if exported.lines().count() as u64 != n + 1 {
        fail(format!("the export has {} lines", exported.lines().count()));
    }

    // 4. Servers.
    let empty_db = work.join("empty.db");
    let _ = std::fs::remove_file(&empty_db);
    let empty_cfg = config(&work, "empty", &empty_db, &prompts, &dialplans);
    let (rss_empty, start_empty, _, _) = serve(&ringback, &empty_cfg, &work.join("empty.log"));
    let full_cfg = config(&work, "full", &db, &prompts, &dialplans);
    let (rss_full, start_full, load_ms, listed) =
        serve(&ringback, &full_cfg, &work.join("full.log"));
    if listed != n {
        fail(format!("the server loaded customers={listed}"));
    }
    let per_customer = (rss_full as f64 - rss_empty as f64) * 1024.0 / n as f64;
    let result: Value = json!({
        "customers": n,
        "numbers": numbers,
        "csv_bytes": bytes.len(),
        "in_process": {
            "parse_ms": parse_ms,
            "index_build_ms": index_ms,
            "index_rss_delta_kib": rss1.saturating_sub(rss0),
            "lookup_ns": { "as_stored": hit_ns, "other_spelling": other_ns, "unknown": miss_ns },
            "lookups_each": lookups,
        },
        "cli": {
            "import_ms": import_ms,
            "import_peak_rss_kib": import_rss,
            "import_says": import_err.trim(),
            "export_ms": export_ms,
        },
        "server": {
            "rss_kib_empty_directory": rss_empty,
            "rss_kib_full_directory": rss_full,
            "bytes_per_customer": per_customer,
            "startup_ms_empty": start_empty,
            "startup_ms_full": start_full,
            "directory_load_ms": load_ms,
        },
    });
    let text = serde_json::to_string_pretty(&result).unwrap_or_default();
    println!("{text}");
    if let Some(out) = args.get("out") {
        std::fs::write(out, format!("{text}\n")).unwrap_or_else(|e| fail(e));
    }
}
