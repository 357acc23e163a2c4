//! `phone-load`'s media bookkeeping: stream ids, which shared socket a
//! stream uses, the receivers' port map, and commands to the sender. Every
//! RTP stream — a caller's or an agent stand-in's — gets an id once; the id
//! indexes the sender's and the receivers' per-stream counters and the
//! caller's key slot.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::phone_tx::{TxCmd, TxStream};
use crate::procfs;
use crate::rx::Control;

/// Whose stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A caller's.
    Caller,
    /// An agent stand-in's leg.
    Agent,
}

/// What the driver remembers about a stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamMeta {
    /// Caller or agent.
    pub kind: Kind,
    /// When our audio started (CLOCK_REALTIME ns; 0 = not yet).
    pub started_ns: u64,
    /// When it stopped (0 = still sending).
    pub stopped_ns: u64,
}

impl StreamMeta {
    /// Sending for the whole of `[from, to)`.
    pub fn covers(&self, from: u64, to: u64) -> bool {
        self.started_ns != 0
            && self.started_ns <= from
            && (self.stopped_ns == 0 || self.stopped_ns >= to)
    }
}

/// Stream ids, sockets and the sender's command channel.
pub struct Media {
    tx: Sender<TxCmd>,
    ctl: Arc<Control>,
    ports: Vec<u16>,
    /// Per stream id.
    pub meta: Vec<StreamMeta>,
    capacity: usize,
    /// Streams refused because `capacity` was reached.
    pub exhausted: u64,
}

impl Media {
    /// Streams are sent from (and received on) `sockets`; at most `capacity` ids.
    pub fn new(
        tx: Sender<TxCmd>,
        ctl: Arc<Control>,
        sockets: &[UdpSocket],
        capacity: usize,
    ) -> Media {
        Media {
            tx,
            ctl,
            ports: sockets
                .iter()
                .map(|s| s.local_addr().map_or(0, |a| a.port()))
                .collect(),
            meta: Vec::with_capacity(capacity),
            capacity,
            exhausted: 0,
        }
    }

    /// A new stream id and the local port to put in SDP; `None` when all ids are used.
    pub fn reserve(&mut self, kind: Kind) -> Option<(u32, u16)> {
        if self.meta.len() >= self.capacity {
            self.exhausted += 1;
            return None;
        }
        let id = self.meta.len() as u32;
        self.meta.push(StreamMeta {
            kind,
            started_ns: 0,
            stopped_ns: 0,
        });
        Some((id, self.local_port(id)))
    }

    /// The local (shared socket's) port of a stream.
    pub fn local_port(&self, id: u32) -> u16 {
        self.ports
            .get(id as usize % self.ports.len().max(1))
            .copied()
            .unwrap_or(0)
    }

    /// Start sending to `dest` (where ringback wants our RTP; its packets
    /// come from there too, which is how the receivers tell streams apart).
    pub fn start(&mut self, id: u32, dest: SocketAddrV4, dtmf_pt: Option<u8>) {
        let Some(m) = self.meta.get_mut(id as usize) else {
            return;
        };
        if m.started_ns != 0 {
            return;
        }
        m.started_ns = procfs::realtime_ns();
        if let Some(p) = self.ctl.port_map.get(usize::from(dest.port())) {
            p.store(id, Ordering::Relaxed);
        }
        let _ = self.tx.send(TxCmd::Add(TxStream {
            id,
            socket: id as usize % self.ports.len().max(1),
            dest,
            pt: 0,
            dtmf_pt,
        }));
    }

    /// Stop sending (idempotent).
    pub fn stop(&mut self, id: u32) {
        let Some(m) = self.meta.get_mut(id as usize) else {
            return;
        };
        if m.started_ns != 0 && m.stopped_ns == 0 {
            m.stopped_ns = procfs::realtime_ns();
            let _ = self.tx.send(TxCmd::Remove { id });
        }
    }

    /// Press `digit` on a stream for `ms` milliseconds (RFC 4733).
    pub fn key(&mut self, id: u32, digit: char, ms: u32) {
        let event = match digit {
            '0'..='9' => digit as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => return,
        };
        let _ = self.tx.send(TxCmd::Key { id, event, ms });
    }

    /// From now on the stream hears another phone through ringback's relay
    /// (its jitter is counted apart from the media clock's).
    pub fn set_relayed(&self, id: u32) {
        if let Some(r) = self.ctl.relayed.get(id as usize) {
            r.store(true, Ordering::Relaxed);
        }
    }

    /// The key slot of a stream.
    pub fn action(&self, id: u32) -> Option<&crate::rx::ActionSlot> {
        self.ctl.actions.get(id as usize)
    }
}
