//! What the kernel knows about a process and the UDP stack: CPU time, RSS,
//! thread count, UDP error counters, and the open-files limit.

use std::time::Instant;

/// CPU time (user + system) of a process, in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(3) ppid(4) ... utime is field 14, stime 15 (1-based),
    // i.e. index 11 and 12 here.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// A `Key:   123 kB` value from `/proc/PID/status`, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Number of threads.
pub fn threads(pid: u32) -> Option<u64> {
    status_kib(pid, "Threads")
}

/// Open file descriptors.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// System-wide UDP counters from `/proc/net/snmp` (name → value).
pub fn udp_counters() -> Vec<(String, u64)> {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return Vec::new();
    };
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

/// One UDP counter's growth between two snapshots.
pub fn udp_delta(before: &[(String, u64)], after: &[(String, u64)], name: &str) -> u64 {
    let get = |s: &[(String, u64)]| s.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
    get(after).saturating_sub(get(before))
}

/// Raise the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// CPU seconds consumed by the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Wall clock in nanoseconds (CLOCK_REALTIME, the clock of `SO_TIMESTAMPNS`).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU% of a process over an interval (100 % = one core).
pub struct CpuMeter {
    pid: u32,
    cpu0: f64,
    t0: Instant,
}

impl CpuMeter {
    /// Start measuring `pid`.
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            cpu0: cpu_seconds(pid).unwrap_or(0.0),
            t0: Instant::now(),
        }
    }

    /// Average CPU% since `start`.
    pub fn percent(&self) -> f64 {
        let cpu = cpu_seconds(self.pid).unwrap_or(self.cpu0) - self.cpu0;
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        100.0 * cpu / wall
    }
}

/// `nproc` and the CPU model name.
pub fn machine() -> (usize, String) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (n, model)
}

/// Busy and total jiffies of all CPUs from `/proc/stat`.
fn system_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Whole-machine CPU use over an interval (100 % = one core), to see what
/// else competed with the benchmark.
pub struct SystemCpu {
    busy0: u64,
    t0: Instant,
}

impl SystemCpu {
    /// Start measuring.
    pub fn start() -> SystemCpu {
        SystemCpu {
            busy0: system_jiffies().map_or(0, |j| j.0),
            t0: Instant::now(),
        }
    }

    /// Average busy CPU% (all processes, kernel included) since `start`.
    pub fn percent(&self) -> f64 {
        let busy = system_jiffies().map_or(self.busy0, |j| j.0) - self.busy0;
        100.0 * busy as f64 / clock_ticks() / self.t0.elapsed().as_secs_f64().max(1e-9)
    }
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
