//! `dialplan-ops`: how long do `ringback check`, a hot reload and a start-up
//! take with 100 dialplan files and the shipped prompts?
//!
//! ```text
//! dialplan-ops --ringback target/release/ringback --shipped dialplans --prompts prompts \
//!     --work /tmp/dir [--files 100] [--checks 20] [--reloads 30] [--sighups 20] \
//!     [--starts 10] [--out bench/results/dialplan-ops.json]
//! ```
//!
//! 1. Writes `--files` dialplans into `WORK/dialplans`: the three shipped
//!    files unchanged plus variants of them (distinct numbers, names, time
//!    zones, business hours, holidays, and menus with different keys,
//!    departments, sub-menus, digit collection, transfers, timeouts), and a
//!    config naming their queues. Every file must pass `ringback check` with
//!    no error and no warning.
//! 2. `check`: wall time of `ringback --config CFG check WORK/dialplans`
//!    (process spawn to exit), `--checks` runs; also of the 3 shipped files,
//!    which shows the fixed cost (prompts) apart from the per-file cost.
//! 3. Start-up: `--starts` times each with a fresh data directory (first run:
//!    database created) and with an existing one (a restart): spawn → the
//!    SIP port answers OPTIONS (probed every millisecond), spawn → the ready
//!    line on stdout, and the server's own `startup_ms`.
//! 4. Hot reload on one running server: `POST /api/v1/dialplans/reload`
//!    `--reloads` times (the request's round trip and the server's
//!    `took_ms`), then SIGHUP `--sighups` times (kill → the server's
//!    `dialplans reloaded` log line, and its `took_ms`).
//!
//! Only processes this program started are signalled, by PID.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod procfs;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ms_since, summary, Args, Http};
use serde_json::{json, Value};

const USAGE: &str = "usage: dialplan-ops --ringback BIN --shipped DIR --prompts DIR --work DIR \
[--files 100] [--checks 20] [--reloads 30] [--sighups 20] [--starts 10] [--out FILE] [--label TEXT]";

const TOKEN: &str = "dialplan-ops-admin-token";

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("dialplan-ops: {msg}");
    std::process::exit(1);
}

// ------------------------------------------------------------ the dialplans

const COMPANIES: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Gringotts",
    "Monarch",
];
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Toronto",
];

/// A department the main menu can lead to: (node name, its nodes' TOML).
fn department(kind: usize, c: usize) -> (String, String) {
    let wait = 300 + 60 * (c % 10);
    match kind {
        0 => (
            "billing".into(),
            format!(
                "[nodes.billing]\ntype = \"queue\"\nqueue = \"billing\"\nmax_wait = {wait}\n\
                 on_timeout = \"billing-callback\"\ncallback = {{ offer = true, after = {}, key = \"1\" }}\n\n\
                 [nodes.billing-callback]\ntype = \"callback\"\nqueue = \"billing\"\nconfirm_prompt = \"callback-confirm\"\n",
                30 + 15 * (c % 4)
            ),
        ),
        1 => (
            "support".into(),
            format!(
                "[nodes.support]\ntype = \"menu\"\nprompt = \"support-menu\"\n\
                 options = {{ \"{k1}\" = \"internet\", \"{k2}\" = \"phone-line\" }}\n\
                 invalid_prompt = \"invalid-option\"\ntimeout_prompt = \"no-input\"\ntimeout = {t}\n\n\
                 [nodes.internet]\ntype = \"set\"\nvars = {{ topic = \"internet\", line = \"{c}\" }}\nnext = \"support-queue\"\n\n\
                 [nodes.phone-line]\ntype = \"menu\"\nprompt = \"phone-line-menu\"\n\
                 options = {{ \"1\" = \"outage-info\", \"2\" = \"account\", \"*\" = \"support\" }}\n\
                 invalid_prompt = \"invalid-option\"\ntimeout_prompt = \"no-input\"\nmax_retries = {r}\n\n\
                 [nodes.outage-info]\ntype = \"play\"\nprompt = \"outage-info\"\nnext = \"phone-line\"\n\n\
                 [nodes.account]\ntype = \"gather\"\nprompt = \"enter-account\"\nvar = \"account\"\n\
                 min_digits = {min}\nmax_digits = {max}\nterminator = \"#\"\n\
                 invalid_prompt = \"invalid-entry\"\ntimeout_prompt = \"no-input\"\nnext = \"fault\"\n\n\
                 [nodes.fault]\ntype = \"set\"\nvars = {{ topic = \"phone-line-fault\" }}\nnext = \"support-queue\"\n\n\
                 [nodes.support-queue]\ntype = \"queue\"\nqueue = \"support\"\npriority = {p}\n\
                 callback = {{ offer = true, after = 60, key = \"1\" }}\n",
                k1 = 1 + c % 2,
                k2 = 2 - c % 2,
                t = 3 + c % 5,
                r = 2 + c % 3,
                min = 4 + c % 3,
                max = 8 + c % 5,
                p = (c % 3) * 10,
            ),
        ),
        2 => (
            "sales".into(),
            format!(
                "[nodes.sales]\ntype = \"queue\"\nqueue = \"sales\"\nmax_wait = {wait}\npriority = 50\n"
            ),
        ),
        3 => (
            "hours-info".into(),
            "[nodes.hours-info]\ntype = \"play\"\nprompt = [\"opening-hours\", \"thank-you\"]\nnext = \"main\"\n"
                .into(),
        ),
        4 => (
            "order-status".into(),
            format!(
                "[nodes.order-status]\ntype = \"gather\"\nprompt = \"enter-account\"\nvar = \"order\"\n\
                 min_digits = 6\nmax_digits = {}\ninvalid_prompt = \"invalid-entry\"\n\
                 timeout_prompt = \"no-input\"\nmax_retries = {}\nnext = \"order-tag\"\n\n\
                 [nodes.order-tag]\ntype = \"set\"\nvars = {{ topic = \"order-status\" }}\nnext = \"order-queue\"\n\n\
                 [nodes.order-queue]\ntype = \"queue\"\nqueue = \"billing\"\npriority = 20\n",
                10 + c % 6,
                2 + c % 2
            ),
        ),
        5 => (
            "cancel".into(),
            format!(
                "[nodes.cancel]\ntype = \"menu\"\nprompt = \"main-menu\"\n\
                 options = {{ \"1\" = \"retention\", \"2\" = \"reception\" }}\n\
                 invalid_prompt = \"invalid-option\"\ntimeout_prompt = \"no-input\"\n\n\
                 [nodes.retention]\ntype = \"queue\"\nqueue = \"retention\"\npriority = 100\n\n\
                 [nodes.reception]\ntype = \"transfer\"\ntarget = \"sip:reception@192.0.2.{}:5060\"\n\
                 prompt = \"transferring\"\n",
                1 + c % 250
            ),
        ),
        _ => unreachable!(),
    }
}

/// A variant of the shipped main line: company `c`.
fn main_line(c: usize) -> String {
    let company = format!("{} {}", COMPANIES[c % COMPANIES.len()], c);
    let zone = ZONES[c % ZONES.len()];
    let open_from = format!("{:02}:{:02}", 7 + c % 3, if c % 2 == 0 { 0 } else { 30 });
    let open_to = format!("{:02}:00", 17 + c % 5);
    let saturday = if c % 3 == 0 {
        format!(
            "\n  {{ days = \"sat\", from = \"09:00\", to = \"{:02}:00\" }},",
            12 + c % 3
        )
    } else {
        String::new()
    };
    // 3 to 6 departments, in an order that differs per company.
    let count = 3 + c % 4;
    let mut kinds: Vec<usize> = (0..6).collect();
    kinds.rotate_left(c % 6);
    kinds.truncate(count);
    let mut options = Vec::new();
    let mut nodes = String::new();
    for (i, k) in kinds.iter().enumerate() {
        let (name, text) = department(*k, c);
        options.push(format!("\"{}\" = \"{name}\"", i + 1));
        nodes.push('\n');
        nodes.push_str(&text);
    }
    if c % 2 == 1 {
        options.push("\"*\" = \"main\"".into());
    }
    format!(
        "# {company} main line (generated by bench/dialplan.sh from dialplans/main.toml).\n\n\
         [dialplan]\nname = \"{company} main line\"\nnumbers = [\"{n1}\", \"+1555{n2:07}\"]\n\
         start = \"hours\"\noperator = \"operator\"\ntimezone = \"{zone}\"\nlanguage = \"en\"\n\n\
         [nodes.hours]\ntype = \"hours\"\nopen = [\n  {{ days = \"mon-fri\", from = \"{open_from}\", to = \"{open_to}\" }},{saturday}\n]\n\
         holidays = [\"2026-12-25\", \"2027-01-01\", \"2026-{hm:02}-{hd:02}\"]\n\
         open_next = \"welcome\"\nclosed_next = \"closed\"\n\n\
         [nodes.welcome]\ntype = \"play\"\nprompt = \"welcome\"\nnext = \"main\"\n\n\
         [nodes.main]\ntype = \"menu\"\nprompt = \"main-menu\"\noptions = {{ {opts} }}\n\
         timeout = {t}\nmax_retries = {r}\ninvalid_prompt = \"invalid-option\"\ntimeout_prompt = \"no-input\"\n\
         {nodes}\n\
         [nodes.closed]\ntype = \"hangup\"\nprompt = [\"closed\", \"opening-hours\", \"goodbye\"]\n",
        n1 = 3000 + c,
        n2 = 1_000_000 + c,
        hm = 1 + c % 12,
        hd = 1 + c % 28,
        opts = options.join(", "),
        t = 3 + c % 6,
        r = 2 + c % 3,
    )
}

/// A variant of the shipped support direct line.
fn direct_line(c: usize) -> String {
    let company = format!("{} {}", COMPANIES[c % COMPANIES.len()], c);
    let (k1, k2) = if c % 2 == 0 { ("1", "2") } else { ("2", "1") };
    format!(
        "# {company} support direct line (generated by bench/dialplan.sh from\n\
         # dialplans/support-direct.toml).\n\n\
         [dialplan]\nname = \"{company} support direct line\"\nnumbers = [\"{n}\"]\nstart = \"support\"\n\
         operator = \"operator\"\ntimezone = \"{zone}\"\n\n\
         [nodes.support]\ntype = \"menu\"\nprompt = [\"welcome\", \"support-menu\"]\n\
         options = {{ \"{k1}\" = \"internet\", \"{k2}\" = \"account\" }}\n\
         invalid_prompt = \"invalid-option\"\ntimeout_prompt = \"no-input\"\ntimeout = {t}\n\n\
         [nodes.internet]\ntype = \"set\"\nvars = {{ topic = \"internet\", source = \"direct-line-{c}\" }}\nnext = \"support-queue\"\n\n\
         [nodes.account]\ntype = \"gather\"\nprompt = \"enter-account\"\nvar = \"account\"\n\
         min_digits = 4\nmax_digits = {max}\ninvalid_prompt = \"invalid-entry\"\nnext = \"fault\"\n\n\
         [nodes.fault]\ntype = \"set\"\nvars = {{ topic = \"phone-line-fault\", source = \"direct-line-{c}\" }}\nnext = \"support-queue\"\n\n\
         [nodes.support-queue]\ntype = \"queue\"\nqueue = \"support\"\nmax_wait = {w}\n\
         callback = {{ offer = true, after = 60, key = \"1\" }}\n",
        n = 6000 + c,
        zone = ZONES[(c + 3) % ZONES.len()],
        t = 4 + c % 4,
        max = 8 + c % 4,
        w = 600 + 60 * (c % 5),
    )
}

/// Write `files` dialplans into `dir`: the shipped ones plus variants.
fn generate(shipped: &Path, dir: &Path, files: usize) -> usize {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
    let mut names: Vec<PathBuf> = std::fs::read_dir(shipped)
        .unwrap_or_else(|e| fail(format!("{}: {e}", shipped.display())))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    let mut n = 0;
    for p in names.iter().take(files) {
        let to = dir.join(p.file_name().unwrap_or_default());
        std::fs::copy(p, &to).unwrap_or_else(|e| fail(format!("{}: {e}", p.display())));
        n += 1;
    }
    let mut c = 1;
    while n < files {
        let (name, text) = if c % 4 == 0 {
            (format!("direct-{c:03}.toml"), direct_line(c))
        } else {
            (format!("line-{c:03}.toml"), main_line(c))
        };
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| fail(e));
        n += 1;
        c += 1;
    }
    n
}

// ------------------------------------------------------------ processes

fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = u.local_addr().map(|a| a.port()) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    fail("no free port")
}

struct Setup {
    ringback: PathBuf,
    work: PathBuf,
    dialplans: PathBuf,
    prompts: PathBuf,
}

/// Write a config for this server; returns (config path, SIP, API).
fn config(s: &Setup, name: &str, data: &Path) -> (PathBuf, SocketAddr, SocketAddr) {
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let text = format!(
        "# dialplan-ops: written by bench/dialplan.sh\noperator_queue = \"operator\"\n\n\
         [sip]\nlisten = \"{sip}\"\n\n[rtp]\nip = \"127.0.0.1\"\nport_min = 10000\nport_max = 11999\n\n\
         [api]\nlisten = \"{api}\"\n\n[[api.tokens]]\ntoken = \"{TOKEN}\"\nrole = \"admin\"\n\n\
         [dialplans]\ndir = \"{dp}\"\nwatch = true\n\n[prompts]\ndir = \"{pr}\"\n\n\
         [database]\nurl = \"sqlite://{db}/ringback.db\"\n\n\
         [queues.operator]\ndisplay_name = \"Operator\"\n\n[queues.billing]\ndisplay_name = \"Billing\"\n\n\
         [queues.support]\ndisplay_name = \"Technical support\"\n\n[queues.sales]\ndisplay_name = \"Sales\"\n\n\
         [queues.retention]\ndisplay_name = \"Retention\"\n",
        dp = s.dialplans.display(),
        pr = s.prompts.display(),
        db = data.display(),
    );
    let path = s.work.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap_or_else(|e| fail(e));
    (path, sip, api)
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the PID of a child this program spawned and has
    // not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// SIGTERM, wait up to 10 s, then SIGKILL.
fn stop(mut child: Child) {
    signal(&child, libc::SIGTERM);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Lines of a child's pipe with the time they were read.
fn line_reader<R: std::io::Read + Send + 'static>(r: R) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    rx
}

fn options(sip: SocketAddr, local: SocketAddr, i: u64) -> String {
    format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-dpo-{i};rport\r\n\
         From: <sip:probe@{local}>;tag=dpo{i}\r\nTo: <sip:{sip}>\r\nCall-ID: dpo-{i}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

struct Start {
    options_ms: f64,
    ready_line_ms: f64,
    startup_ms: f64,
}

/// One start: spawn → OPTIONS answered, ready line, `startup_ms`; then stop.
fn start_once(s: &Setup, name: &str, data: &Path, seq: &mut u64) -> Start {
    let (cfg, sip, _) = config(s, name, data);
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(e));
    probe.set_nonblocking(true).unwrap_or_else(|e| fail(e));
    let local = probe.local_addr().unwrap_or_else(|e| fail(e));
    let log = std::fs::File::create(s.work.join(format!("{name}.log"))).unwrap_or_else(|e| fail(e));
    let t0 = Instant::now();
    let mut child = Command::new(&s.ringback)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env("RINGBACK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| fail(format!("{}: {e}", s.ringback.display())));
    let lines = line_reader(child.stdout.take().unwrap_or_else(|| fail("no stdout")));
    let mut buf = [0u8; 4096];
    let mut answered = None;
    let mut last = Instant::now() - Duration::from_secs(1);
    while t0.elapsed() < Duration::from_secs(20) {
        if last.elapsed() >= Duration::from_millis(1) {
            *seq += 1;
            let _ = probe.send_to(options(sip, local, *seq).as_bytes(), sip);
            last = Instant::now();
        }
        if let Ok((n, _)) = probe.recv_from(&mut buf) {
            if buf[..n].starts_with(b"SIP/2.0 200") {
                answered = Some(ms_since(t0));
                break;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            fail(format!(
                "ringback exited ({st}) during start-up; see {}",
                s.work.join(format!("{name}.log")).display()
            ));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let Some(options_ms) = answered else {
        stop(child);
        fail("the SIP port did not answer OPTIONS within 20 s");
    };
    let (at, line) = lines
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| fail("no ready line"));
    let ready_line_ms = at.duration_since(t0).as_secs_f64() * 1000.0;
    let startup_ms = line
        .split("startup_ms=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    stop(child);
    Start {
        options_ms,
        ready_line_ms,
        startup_ms,
    }
}

fn starts_json(v: &[Start]) -> Value {
    let mut o: Vec<f64> = v.iter().map(|s| s.options_ms).collect();
    let mut r: Vec<f64> = v.iter().map(|s| s.ready_line_ms).collect();
    let mut m: Vec<f64> = v.iter().map(|s| s.startup_ms).collect();
    json!({
        "spawn_to_options_answered_ms": summary(&mut o),
        "spawn_to_ready_line_ms": summary(&mut r),
        "server_startup_ms": summary(&mut m),
    })
}

/// Wall time of one `ringback check`, with its exit status and output.
fn check_once(s: &Setup, cfg: &Path, dir: &Path) -> (f64, bool, String) {
    let t0 = Instant::now();
    let out = Command::new(&s.ringback)
        .arg("--config")
        .arg(cfg)
        .arg("check")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail(format!("{}: {e}", s.ringback.display())));
    let ms = ms_since(t0);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (ms, out.status.success(), text)
}

fn main() {
    let args = Args::parse(USAGE);
    let abs = |p: String| std::fs::canonicalize(&p).unwrap_or_else(|e| fail(format!("{p}: {e}")));
    let work = PathBuf::from(args.need("work"));
    std::fs::create_dir_all(&work).unwrap_or_else(|e| fail(e));
    let s = Setup {
        ringback: abs(args.need("ringback")),
        work: abs(work.display().to_string()),
        dialplans: abs(work.display().to_string()).join("dialplans"),
        prompts: abs(args.need("prompts")),
    };
    let shipped = abs(args.need("shipped"));
    let files: usize = args.num("files", 100);
    let checks: usize = args.num("checks", 20);
    let reloads: usize = args.num("reloads", 30);
    let sighups: usize = args.num("sighups", 20);
    let starts: usize = args.num("starts", 10);

    // 1. The dialplans, validated.
    let n = generate(&shipped, &s.dialplans, files);
    let bytes: u64 = std::fs::read_dir(&s.dialplans)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let prompts = std::fs::read_dir(&s.prompts)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .count()
        })
        .unwrap_or(0);
    let (cfg, _, _) = config(&s, "check", &s.work.join("data-check"));
    let (_, ok, text) = check_once(&s, &cfg, &s.dialplans);
    let warnings = text.matches("warning:").count();
    if !ok || warnings > 0 {
        eprintln!("{text}");
        fail("the generated dialplans do not pass `ringback check` cleanly");
    }
    eprintln!(
        "{n} dialplans ({bytes} bytes) in {} pass `ringback check`; {prompts} prompts",
        s.dialplans.display()
    );

    // 2. check.
    let mut check_ms = Vec::new();
    for _ in 0..checks {
        let (ms, ok, text) = check_once(&s, &cfg, &s.dialplans);
        if !ok {
            fail(format!("check failed:\n{text}"));
        }
        check_ms.push(ms);
    }
    let mut shipped_ms = Vec::new();
    for _ in 0..checks {
        let (ms, ok, text) = check_once(&s, &cfg, &shipped);
        if !ok {
            fail(format!("check of the shipped dialplans failed:\n{text}"));
        }
        shipped_ms.push(ms);
    }
    let check = summary(&mut check_ms);
    let check_shipped = summary(&mut shipped_ms);
    eprintln!(
        "check: {n} files median {} ms; 3 shipped files median {} ms",
        check["p50"], check_shipped["p50"]
    );

    // 3. Start-up.
    let mut seq = 0u64;
    let mut fresh = Vec::new();
    for i in 0..starts {
        let data = s.work.join(format!("data-fresh-{i}"));
        let _ = std::fs::remove_dir_all(&data);
        fresh.push(start_once(&s, &format!("start-fresh-{i}"), &data, &mut seq));
        let _ = std::fs::remove_dir_all(&data);
    }
    let existing_data = s.work.join("data-existing");
    let _ = start_once(&s, "start-existing-init", &existing_data, &mut seq);
    let mut existing = Vec::new();
    for i in 0..starts {
        existing.push(start_once(
            &s,
            &format!("start-existing-{i}"),
            &existing_data,
            &mut seq,
        ));
    }
    let fresh_j = starts_json(&fresh);
    let existing_j = starts_json(&existing);
    eprintln!(
        "start-up (existing data): spawn → OPTIONS answered median {} ms, startup_ms median {} ms",
        existing_j["spawn_to_options_answered_ms"]["p50"], existing_j["server_startup_ms"]["p50"]
    );

    // 4. Hot reload on one running server.
    let (cfg, _, api) = config(&s, "reload", &existing_data);
    let mut child = Command::new(&s.ringback)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .arg("--log-format")
        .arg("json")
        .env("RINGBACK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(e));
    let out_lines = line_reader(child.stdout.take().unwrap_or_else(|| fail("no stdout")));
    let err_lines = line_reader(child.stderr.take().unwrap_or_else(|| fail("no stderr")));
    if out_lines.recv_timeout(Duration::from_secs(20)).is_err() {
        stop(child);
        fail("reload server did not start");
    }
    let mut http = Http::connect(api).unwrap_or_else(|e| fail(format!("API {api}: {e}")));
    let mut api_round = Vec::new();
    let mut api_took = Vec::new();
    for i in 0..reloads + 2 {
        let t0 = Instant::now();
        let a = http
            .call("POST", "/api/v1/dialplans/reload", Some(TOKEN), "")
            .unwrap_or_else(|e| fail(format!("reload: {e}")));
        let ms = ms_since(t0);
        let v = a.json();
        if a.status != 200 || v["dialplans"].as_u64() != Some(n as u64) {
            fail(format!("reload answered {}: {}", a.status, a.body));
        }
        if i >= 2 {
            api_round.push(ms);
            api_took.push(v["took_ms"].as_f64().unwrap_or(f64::NAN));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Drop the log lines of the API reloads.
    while err_lines.try_recv().is_ok() {}
    let mut hup_seen = Vec::new();
    let mut hup_took = Vec::new();
    for _ in 0..sighups {
        let t0 = Instant::now();
        signal(&child, libc::SIGHUP);
        let until = t0 + Duration::from_secs(10);
        let mut got = None;
        while Instant::now() < until {
            let Ok((at, line)) = err_lines.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            let f = &v["fields"];
            if f["message"] == "dialplans reloaded" && f["trigger"] == "SIGHUP" {
                got = Some((
                    at.duration_since(t0).as_secs_f64() * 1000.0,
                    f["took_ms"].as_f64().unwrap_or(f64::NAN),
                ));
                break;
            }
            if v["level"] == "ERROR" {
                eprintln!("server: {line}");
            }
        }
        let Some((seen, took)) = got else {
            stop(child);
            fail("no `dialplans reloaded` log line after SIGHUP");
        };
        hup_seen.push(seen);
        hup_took.push(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    let api_round_j = summary(&mut api_round);
    let api_took_j = summary(&mut api_took);
    let hup_seen_j = summary(&mut hup_seen);
    let hup_took_j = summary(&mut hup_took);
    eprintln!(
        "reload via API: took_ms median {} p99 {}, round trip median {} p99 {}; SIGHUP: took_ms median {} p99 {}",
        api_took_j["p50"], api_took_j["p99"], api_round_j["p50"], api_round_j["p99"],
        hup_took_j["p50"], hup_took_j["p99"]
    );

    let (nproc, cpu_model) = procfs::machine();
    let reload_p99 = api_took_j["p99"]
        .as_f64()
        .unwrap_or(f64::NAN)
        .max(hup_took_j["p99"].as_f64().unwrap_or(f64::NAN));
    let start_p50 = existing_j["spawn_to_options_answered_ms"]["p50"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let result = json!({
        "benchmark": "dialplan-ops",
        "label": args.get("label").unwrap_or(""),
        "timestamp_unix": procfs::realtime_ns() / 1_000_000_000,
        "machine": { "nproc": nproc, "cpu_model": cpu_model, "loadavg_end": procfs::loadavg() },
        "dialplans": { "files": n, "bytes": bytes, "shipped_copied": 3, "prompts": prompts, "store": "sqlite" },
        "check": {
            "runs": checks,
            "files_ms": check,
            "shipped_3_files_ms": check_shipped,
            "what": "wall time of `ringback --config CFG check DIR`, process spawn to exit",
        },
        "reload": {
            "api": { "runs": reloads, "server_took_ms": api_took_j, "round_trip_ms": api_round_j },
            "sighup": { "runs": sighups, "server_took_ms": hup_took_j, "kill_to_log_line_ms": hup_seen_j },
            "what": "took_ms: the server's own figure (load prompts + dialplans, validate); round trip: POST /api/v1/dialplans/reload until its answer (adds recording every version in dialplan_versions and HTTP)",
        },
        "startup": {
            "runs": starts,
            "existing_data_dir": existing_j,
            "fresh_data_dir": fresh_j,
            "what": "spawn of `ringback serve` → SIP UDP port answers OPTIONS (probed every 1 ms); ready line on stdout; the server's startup_ms (from the start of serve(), after config parsing and runtime creation)",
        },
        "targets": {
            "reload_ms": 50.0, "startup_ms": 100.0,
            "reload_met": reload_p99 < 50.0,
            "startup_met": start_p50 < 100.0,
        },
    });
    match args.get("out") {
        Some(path) => common::write_json(path, &result),
        None => println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        ),
    }
}
