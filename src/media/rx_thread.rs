//! Receive threads: one per media clock, each reading the sockets of that
//! clock's streams.
//!
//! Why a thread that polls every millisecond instead of a tokio task per
//! stream: a task woken for every packet paid a scheduler round trip per
//! packet (about 6 µs against a kernel floor near 1 µs at 1,000 talking
//! callers). This thread sleeps 1 ms, asks its epoll set which sockets hold
//! packets (never blocking) and reads them in `recvmmsg` batches
//! ([`super::poller`]): one wake-up per millisecond whatever the packet
//! rate. Why not on the clock thread itself, which wakes every millisecond
//! anyway: measured at 1,000 talking callers, the receive work made the
//! real-time clock late (packets lost to overruns, jitter p99 5–12 ms
//! instead of 3 ms); sends must never wait for receives. A packet waits at
//! most about a millisecond before it is relayed or its key reported.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver as CommandRx, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::poller::Poller;
use super::receive::Receiver;
use super::RtpSocket;

/// How often the thread reads.
const PERIOD: Duration = Duration::from_millis(1);

/// How often RTP timeouts are checked.
const TIMEOUT_CHECK: Duration = Duration::from_millis(100);

/// A command for a receive thread.
pub(super) enum RxCommand {
    /// Start reading a stream's socket.
    Add {
        /// Stream id.
        id: u64,
        /// Its socket (shared with the clock, which sends on it).
        socket: Arc<RtpSocket>,
        /// What to do with its packets.
        receiver: Box<Receiver>,
    },
    /// Stop reading it.
    Remove {
        /// Stream id.
        id: u64,
    },
}

/// Handle to one receive thread.
#[derive(Clone)]
pub(super) struct RxHandle {
    tx: Sender<RxCommand>,
}

impl RxHandle {
    /// Start the receive thread `media-rx-{index}`.
    pub(super) fn spawn(index: usize) -> std::io::Result<RxHandle> {
        let (tx, rx) = mpsc::channel();
        let poller = Poller::new()?;
        std::thread::Builder::new()
            .name(format!("media-rx-{index}"))
            .spawn(move || run(rx, poller))?;
        Ok(RxHandle { tx })
    }

    /// Send a command; false if the thread has stopped.
    pub(super) fn send(&self, cmd: RxCommand) -> bool {
        self.tx.send(cmd).is_ok()
    }
}

/// One stream as the receive thread holds it.
struct Watched {
    socket: Arc<RtpSocket>,
    receiver: Box<Receiver>,
}

fn run(commands: CommandRx<RxCommand>, mut poller: Poller) {
    let mut streams: HashMap<u64, Watched> = HashMap::new();
    let mut next_check = Instant::now() + TIMEOUT_CHECK;
    // Reused every millisecond: no allocation on the read path.
    let mut ready: Vec<u64> = Vec::new();
    loop {
        if streams.is_empty() {
            // Idle: nothing to read, so no wake-up every millisecond; the
            // next stream's `Add` wakes the thread.
            match commands.recv() {
                Ok(cmd) => apply(cmd, &mut streams, &mut poller),
                Err(_) => return,
            }
        } else {
            std::thread::sleep(PERIOD);
        }
        loop {
            match commands.try_recv() {
                Ok(cmd) => apply(cmd, &mut streams, &mut poller),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        ready.clear();
        ready.extend(poller.ready());
        for id in &ready {
            let Some(w) = streams.get_mut(id) else {
                continue;
            };
            let fd = w.socket.get_ref().as_raw_fd();
            let receiver = &mut w.receiver;
            poller.drain(fd, |pkt, from| receiver.on_datagram(pkt, from, now));
        }
        if now >= next_check {
            for w in streams.values_mut() {
                w.receiver.check_timeout(now);
            }
            next_check = now + TIMEOUT_CHECK;
        }
    }
}

/// Start or stop watching a stream.
fn apply(cmd: RxCommand, streams: &mut HashMap<u64, Watched>, poller: &mut Poller) {
    match cmd {
        RxCommand::Add {
            id,
            socket,
            receiver,
        } => {
            if let Err(e) = poller.add(socket.get_ref().as_raw_fd(), id) {
                tracing::warn!(error = %e, "cannot watch an RTP socket: the stream hears nothing");
            }
            streams.insert(id, Watched { socket, receiver });
        }
        RxCommand::Remove { id } => {
            if let Some(w) = streams.remove(&id) {
                poller.remove(w.socket.get_ref().as_raw_fd());
            }
        }
    }
}
