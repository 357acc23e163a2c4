//! RTP port allocation from the configured range.
//!
//! Ports are handed out next-fit (the cursor keeps moving) so a port that was
//! just released is not reused at once: a late packet from the previous call
//! must not land in the next one.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// Hands out even RTP ports and binds them.
#[derive(Debug)]
pub struct PortAllocator {
    ip: IpAddr,
    min: u16,
    max: u16,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    cursor: u16,
    used: HashSet<u16>,
}

/// A bound RTP socket whose port returns to the pool when dropped.
#[derive(Debug)]
pub struct RtpPort {
    /// The bound socket (non-blocking) until [`RtpPort::take_socket`] hands it on.
    socket: Option<UdpSocket>,
    /// Its local address.
    pub addr: SocketAddr,
    pool: Arc<PortAllocator>,
}

impl RtpPort {
    /// Move the socket out (to tokio); the port stays reserved until the
    /// `RtpPort` is dropped.
    pub fn take_socket(&mut self) -> Option<UdpSocket> {
        self.socket.take()
    }
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        self.pool.release(self.addr.port());
    }
}

impl PortAllocator {
    /// A pool over the even ports in `min..=max` on `ip`.
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Arc<PortAllocator> {
        let min = min + (min % 2);
        Arc::new(PortAllocator {
            ip,
            min,
            max,
            state: Mutex::new(State {
                cursor: min,
                used: HashSet::new(),
            }),
        })
    }

    /// Number of even ports in the range.
    pub fn capacity(&self) -> usize {
        usize::from((self.max - self.min) / 2 + 1)
    }

    /// Bind the next free even port. Ports another process holds are
    /// skipped. `None` when the whole range is busy.
    pub fn allocate(self: &Arc<Self>) -> Option<RtpPort> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..self.capacity() {
            let port = st.cursor;
            st.cursor = if port >= self.max - 1 {
                self.min
            } else {
                port + 2
            };
            if st.used.contains(&port) {
                continue;
            }
            let addr = SocketAddr::new(self.ip, port);
            if let Ok(socket) = UdpSocket::bind(addr) {
                if socket.set_nonblocking(true).is_err() {
                    continue;
                }
                st.used.insert(port);
                return Some(RtpPort {
                    socket: Some(socket),
                    addr,
                    pool: Arc::clone(self),
                });
            }
        }
        None
    }

    fn release(&self, port: u16) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.used.remove(&port);
    }

    /// Ports currently in use.
    pub fn in_use(&self) -> usize {
        self.state.lock().map(|s| s.used.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn allocates_even_ports_and_releases() {
        let pool = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 41001, 41010);
        assert_eq!(pool.capacity(), 5);
        let a = pool.allocate().expect("a port");
        assert_eq!(a.addr.port() % 2, 0);
        let b = pool.allocate().expect("b port");
        assert_ne!(a.addr.port(), b.addr.port());
        assert_eq!(pool.in_use(), 2);
        drop(a);
        assert_eq!(pool.in_use(), 1);
    }

    #[test]
    fn exhausted_range_returns_none() {
        let pool = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 41100, 41103);
        let mut held = Vec::new();
        while let Some(p) = pool.allocate() {
            held.push(p);
        }
        assert!(held.len() <= 2);
        assert!(pool.allocate().is_none());
    }
}
