//! Reading many RTP sockets from one thread: an epoll set of a receive
//! thread's streams, asked without blocking once per millisecond, and
//! `recvmmsg` batches from each readable socket: one `epoll_wait` per
//! millisecond plus about one `recvmmsg` per packet, close to the kernel's
//! own floor, where a tokio task per call paid a scheduler wake-up per
//! packet.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Datagrams read from one socket per `recvmmsg`.
const BATCH: usize = 8;

/// Batches read from one socket per phase at most, so one flooded socket
/// cannot starve the others (level-triggered epoll reports it again).
const MAX_BATCHES: usize = 4;

/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 256;

/// Largest datagram kept (RTP over Ethernet fits; a larger one is cut and
/// then refused by the RTP parser).
const MTU: usize = 2048;

/// An epoll set keyed by stream id, with the buffers its reads use.
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
    bufs: Box<[[u8; MTU]; BATCH]>,
    addrs: [libc::sockaddr_storage; BATCH],
    lens: [usize; BATCH],
}

impl Poller {
    /// A new, empty set.
    pub fn new() -> std::io::Result<Poller> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            bufs: Box::new([[0u8; MTU]; BATCH]),
            // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) value.
            addrs: unsafe { std::mem::zeroed() },
            lens: [0; BATCH],
        })
    }

    /// Watch `fd` (a non-blocking UDP socket) for stream `id`.
    pub fn add(&self, fd: RawFd, id: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: id,
        };
        // SAFETY: valid epoll and socket descriptors; `ev` outlives the call.
        let r =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stop watching `fd`; call before the socket is closed.
    pub fn remove(&self, fd: RawFd) {
        // SAFETY: valid descriptors; a null event is allowed for DEL.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }

    /// The ids of the streams with something to read now (no waiting).
    pub fn ready(&mut self) -> impl Iterator<Item = u64> + '_ {
        // SAFETY: `events` has room for EVENTS entries; timeout 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                EVENTS as i32,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        self.events[..n].iter().map(|e| e.u64)
    }

    /// Read what `fd` holds (up to a few batches) and hand each datagram
    /// with its source to `each`. Errors (an ICMP unreachable from an
    /// earlier send surfaces as one) end the read; nothing is fatal.
    pub fn drain(&mut self, fd: RawFd, mut each: impl FnMut(&[u8], SocketAddr)) {
        for _ in 0..MAX_BATCHES {
            let n = self.recv_batch(fd);
            for i in 0..n {
                let Some(from) = source(&self.addrs[i]) else {
                    continue;
                };
                let len = self.lens[i].min(MTU);
                each(&self.bufs[i][..len], from);
            }
            if n < BATCH {
                return;
            }
        }
    }

    /// One non-blocking `recvmmsg` into the buffers; how many arrived.
    fn recv_batch(&mut self, fd: RawFd) -> usize {
        let mut iov: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.bufs[i].as_mut_ptr().cast(),
            iov_len: MTU,
        });
        // SAFETY: an all-zero mmsghdr is valid; the fields that matter are set below.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = std::ptr::from_mut(&mut iov[i]);
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers of the stated sizes,
        // owned by `self` or this frame, for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        for (len, m) in self.lens.iter_mut().zip(&msgs).take(n) {
            *len = m.msg_len as usize;
        }
        n
    }
}

/// The source address the kernel wrote for one datagram.
fn source(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn ready_sockets_are_named_by_id_and_drained_in_batches_with_their_sources() {
        let mut poller = Poller::new().expect("epoll");
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        poller.add(a.as_raw_fd(), 7).expect("add a");
        poller.add(b.as_raw_fd(), 9).expect("add b");
        assert_eq!(poller.ready().count(), 0, "nothing sent yet");

        let peer = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to_a = a.local_addr().expect("addr");
        for i in 0..(BATCH + 3) as u8 {
            peer.send_to(&[i; 20], to_a).expect("send");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(poller.ready().collect::<Vec<_>>(), [7]);
        let mut got = Vec::new();
        poller.drain(a.as_raw_fd(), |pkt, from| got.push((pkt.to_vec(), from)));
        assert_eq!(got.len(), BATCH + 3, "more than one batch");
        let me = peer.local_addr().expect("addr");
        for (i, (pkt, from)) in got.iter().enumerate() {
            assert_eq!(pkt, &vec![i as u8; 20]);
            assert_eq!(*from, me);
        }
        assert_eq!(poller.ready().count(), 0, "drained");

        // A removed socket is not reported any more.
        poller.remove(a.as_raw_fd());
        peer.send_to(b"x", to_a).expect("send");
        peer.send_to(b"y", b.local_addr().expect("addr"))
            .expect("send");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(poller.ready().collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn an_empty_socket_drains_nothing() {
        let mut poller = Poller::new().expect("epoll");
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        a.set_nonblocking(true).expect("nonblocking");
        let mut n = 0;
        poller.drain(a.as_raw_fd(), |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
