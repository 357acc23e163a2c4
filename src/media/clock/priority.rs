//! How a clock thread asks for its wake-ups to win: `SCHED_FIFO` while it
//! has headroom, normal scheduling when overloaded (so signalling keeps
//! running), and a tight timer slack.

/// A clock thread busier than this share of a second gives up real-time
/// priority: it has more work than time, and as `SCHED_FIFO` it would take
/// the CPU from signalling (SIP, call tasks) entirely.
pub(super) const DEMOTE_ABOVE_PCT: u64 = 90;

/// ...and takes it back once its load is below this again.
pub(super) const RESTORE_BELOW_PCT: u64 = 70;

/// Real-time priority while there is headroom, fair scheduling when there
/// is not. Admission control normally refuses calls long before a clock is
/// this busy; this is the guard for when it is disabled or the machine is
/// shared with other work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RtGovernor {
    /// The configured priority; 0 when real-time scheduling is not in use.
    pub(super) priority: u8,
    /// Whether the thread runs `SCHED_FIFO` now.
    pub(super) realtime: bool,
}

impl RtGovernor {
    /// Given the last second's busy share, whether to switch: `Some(true)`
    /// back to real-time, `Some(false)` down to normal scheduling.
    pub(super) fn on_window(&mut self, busy_pct: u64) -> Option<bool> {
        if self.priority == 0 {
            return None;
        }
        if self.realtime && busy_pct >= DEMOTE_ABOVE_PCT {
            self.realtime = false;
            return Some(false);
        }
        if !self.realtime && busy_pct <= RESTORE_BELOW_PCT {
            self.realtime = true;
            return Some(true);
        }
        None
    }
}

/// Switch the calling clock thread to `SCHED_FIFO` at `priority`, or back
/// to plain normal scheduling (nice 0: an overloaded clock must share the
/// CPU evenly, a raised nice value would still starve signalling).
pub(super) fn set_realtime(realtime: bool, priority: u8, busy_pct: u64) {
    // SAFETY: scheduling syscalls on the calling thread with valid arguments.
    unsafe {
        if realtime {
            let param = libc::sched_param {
                sched_priority: i32::from(priority.min(99)),
            };
            libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param);
            tracing::info!(
                busy_pct,
                "media clock has headroom again: real-time priority restored"
            );
        } else {
            let param = libc::sched_param { sched_priority: 0 };
            libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_OTHER, &param);
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 0);
            tracing::warn!(
                busy_pct,
                "media clock overloaded: real-time priority dropped so signalling keeps running"
            );
        }
    }
}

/// Make this clock thread's wake-ups win over other work: `SCHED_FIFO` at
/// `rt_priority`, else nice -10, else unchanged. Which one took is logged
/// once (by the first clock thread) so an operator can see it. Returns
/// whether `SCHED_FIFO` was granted.
pub(super) fn raise_priority(index: usize, rt_priority: u8) -> bool {
    if rt_priority == 0 {
        return false;
    }
    let param = libc::sched_param {
        sched_priority: i32::from(rt_priority.min(99)),
    };
    // SAFETY: plain syscalls on the calling thread with valid arguments.
    let rt = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    let how = if rt == 0 {
        format!("SCHED_FIFO priority {}", param.sched_priority)
    } else {
        // SAFETY: gettid has no arguments; setpriority on our own thread id.
        let niced = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, -10)
        };
        if niced == 0 {
            "nice -10 (SCHED_FIFO not permitted)".to_string()
        } else {
            "normal priority (neither SCHED_FIFO nor nice -10 permitted)".to_string()
        }
    };
    if index == 0 {
        tracing::info!(priority = %how, "media clock threads");
    }
    rt == 0
}

/// Ask the kernel to wake this thread within 1 µs of its deadline instead of
/// the default 50 µs slack: a millisecond-phase clock needs the precision,
/// and there are only a few such threads.
pub(super) fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
}
