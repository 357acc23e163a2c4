//! Setting the endpoint up: binding UDP and TCP on one port, the agents'
//! digest secrets and algorithms for the registrar, and the kernel's
//! receive timestamps that measure signalling delay.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};

use crate::registrar::Secret;

/// Bind UDP and TCP on the same port. Port 0 picks one that is free for both.
pub async fn bind(
    addr: SocketAddr,
    with_tcp: bool,
) -> anyhow::Result<(UdpSocket, Option<TcpListener>)> {
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?;
        if !with_tcp {
            return Ok((udp, None));
        }
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, Some(tcp))),
            Err(e) if addr.port() != 0 => {
                anyhow::bail!("cannot bind SIP TCP {local}: {e}")
            }
            Err(_) => continue, // port 0: try another pair
        }
    }
    anyhow::bail!("no port free for both UDP and TCP on {}", addr.ip())
}

/// How long the datagram just read from `udp` waited in the kernel's
/// receive queue (`SIOCGSTAMPNS`: its arrival time, `CLOCK_REALTIME`).
/// `None` until timestamping is on (the first call turns it on).
pub(super) fn queued_for(udp: &UdpSocket) -> Option<std::time::Duration> {
    use std::os::fd::AsRawFd;
    /// `SIOCGSTAMPNS` from linux/sockios.h (not in the libc crate).
    const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: an ioctl on our own socket with a valid timespec out-pointer.
    let rc = unsafe { libc::ioctl(udp.as_raw_fd(), SIOCGSTAMPNS, &mut ts) };
    if rc != 0 || ts.tv_sec <= 0 {
        return None;
    }
    let arrived = std::time::UNIX_EPOCH
        + std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32);
    std::time::SystemTime::now().duration_since(arrived).ok()
}

/// `[agents.NAME] auth_algorithms`, for the agents that set one.
pub(super) fn agent_algorithms(
    cfg: &crate::config::Config,
) -> HashMap<String, Vec<ringback_sip::auth::Algorithm>> {
    cfg.agents
        .iter()
        .filter_map(|(id, a)| {
            let list = a.auth_algorithms.as_ref()?;
            let parsed = list
                .iter()
                .filter_map(|x| ringback_sip::auth::Algorithm::parse(x))
                .collect();
            Some((id.clone(), parsed))
        })
        .collect()
}

/// Agents' digest secrets from the configuration.
pub(super) fn agent_secrets(cfg: &crate::config::Config) -> HashMap<String, Secret> {
    cfg.agents
        .iter()
        .filter_map(|(id, a)| {
            let secret = match (&a.password, &a.ha1) {
                (Some(p), _) => Secret::Password(p.clone()),
                (None, Some(h)) => Secret::Md5Ha1(h.clone()),
                (None, None) => return None,
            };
            Some((id.clone(), secret))
        })
        .collect()
}
