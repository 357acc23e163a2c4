//! `sip.allow_from`: which networks may start calls and registrations.
//!
//! Toll fraud starts with an INVITE from an address nobody configured;
//! scanners (friendly-scanner, sipvicious) also try REGISTERs. When the list
//! is not empty, an out-of-dialog request from a source outside every listed
//! network is answered `403 Forbidden` before any other work: before
//! admission control, the dialplan lookup or digest authentication. See
//! [`screened`] for which requests that is.
//!
//! Entries are CIDRs (`203.0.113.0/24`, `2001:db8::/32`) or single addresses
//! (`198.51.100.7`, `::1`, meaning /32 or /128). Everything is compared in
//! IPv6 space with IPv4 as IPv4-mapped addresses (`::ffff:a.b.c.d`), so an
//! IPv4 source matches an IPv4 entry whether the socket reported it as
//! `10.0.0.1` or `::ffff:10.0.0.1`, `::ffff:10.0.0.0/104` is the same network
//! as `10.0.0.0/8`, and `::/0` admits every source, IPv4 included (while
//! `0.0.0.0/0` admits every IPv4 source only).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One network: an address with the low `128 - prefix` bits zero, in IPv6
/// space (IPv4 mapped into `::ffff:0:0/96`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    /// Prefix length in IPv6 space (an IPv4 `/n` is `/96+n`).
    prefix: u8,
}

/// Prefix of IPv4-mapped IPv6 addresses (`::ffff:0:0/96`).
const MAPPED: u128 = 0xffff_u128 << 32;

fn as_v6(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => MAPPED | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

impl Cidr {
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        as_v6(ip) & mask(self.prefix) == self.net
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `addr` or `addr/prefix`; surrounding whitespace is ignored. Host bits
    /// set under the prefix (`10.0.0.1/8`) are an error rather than silently
    /// widened: that is usually a typo for a single host or another network.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty entry".into());
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("`{addr}` is not an IPv4 or IPv6 address (no host names, brackets or zones)")
        })?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let len = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("prefix length `{p}` is not a number"));
                }
                match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("prefix length /{p} is longer than /{max}")),
                }
            }
        };
        let prefix = if ip.is_ipv4() { 96 + len } else { len };
        let bits = as_v6(ip);
        let net = bits & mask(prefix);
        if net != bits {
            let base = Cidr { net, prefix };
            return Err(format!(
                "host bits set under /{len}: the network is {base}, or write the single address without a prefix"
            ));
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    /// IPv4 networks (inside `::ffff:0:0/96`) print as IPv4.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix >= 96 && self.net & mask(96) == MAPPED {
            // Truncation intended: the low 32 bits are the IPv4 address.
            let v4 = Ipv4Addr::from(self.net as u32);
            write!(f, "{v4}/{}", self.prefix - 96)
        } else {
            write!(f, "{}/{}", Ipv6Addr::from(self.net), self.prefix)
        }
    }
}

/// The parsed `sip.allow_from` list. Empty means everyone is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<Cidr>,
}

impl AllowList {
    /// Parse the configured entries. The error names the entry the way the
    /// configuration file does: `sip.allow_from[2] "10.0.0.300/8": …`
    /// (index from 0, as in the TOML array).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let e = e.as_ref();
                e.parse::<Cidr>()
                    .map_err(|why| format!("sip.allow_from[{i}] {e:?}: {why}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { nets })
    }

    /// True when the list is empty (no restriction).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// May `ip` start calls and registrations? Always when the list is empty.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.nets.is_empty() || self.nets.iter().any(|n| n.contains(ip))
    }
}

/// Requests the list applies to: everything that starts something outside a
/// dialog (no To tag): INVITE (calls, toll fraud), REGISTER (scanners
/// hunting for agent passwords), and SUBSCRIBE, MESSAGE, REFER, PUBLISH and
/// stray BYE/INFO/… (all refused anyway; a 403 tells a scanner nothing).
///
/// REGISTER is screened even with a To tag (it never belongs to a dialog, so
/// a tag must not be a way around the list).
///
/// Not screened:
/// * `OPTIONS`: carriers and load balancers ping with it; the answer is
///   static, costs nothing and admits nothing;
/// * `ACK` (never answered) and `CANCEL` (it only cancels an INVITE that
///   was itself screened);
/// * in-dialog requests (To tag): they reach a call only if its Call-ID is
///   live, and every call began with a screened INVITE; unknown dialogs get
///   481 as before.
pub fn screened(method: &rsip::Method, in_dialog: bool) -> bool {
    use rsip::Method;
    match method {
        Method::Register => true,
        Method::Options | Method::Ack | Method::Cancel => false,
        _ => !in_dialog,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv4_networks_and_single_addresses() {
        let n = cidr("10.0.0.0/8");
        assert!(n.contains(ip("10.0.0.0")));
        assert!(n.contains(ip("10.255.255.255")));
        assert!(!n.contains(ip("11.0.0.0")));
        assert!(!n.contains(ip("9.255.255.255")));
        let host = cidr("127.0.0.2");
        assert_eq!(host, cidr("127.0.0.2/32"));
        assert!(host.contains(ip("127.0.0.2")));
        assert!(!host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.3")));
        let odd = cidr("192.0.2.128/25");
        assert!(odd.contains(ip("192.0.2.200")));
        assert!(!odd.contains(ip("192.0.2.127")));
        assert_eq!(cidr(" 198.51.100.0/24 ").to_string(), "198.51.100.0/24");
    }

    #[test]
    fn zero_prefixes() {
        let any4 = cidr("0.0.0.0/0");
        assert!(any4.contains(ip("1.2.3.4")));
        assert!(any4.contains(ip("255.255.255.255")));
        assert!(any4.contains(ip("::ffff:1.2.3.4")));
        assert!(!any4.contains(ip("2001:db8::1")));
        let any = cidr("::/0");
        assert!(any.contains(ip("2001:db8::1")));
        assert!(any.contains(ip("1.2.3.4")));
        assert_eq!(any.to_string(), "::/0");
        assert_eq!(any4.to_string(), "0.0.0.0/0");
    }

    #[test]
    fn ipv6_networks() {
        let n = cidr("2001:db8::/32");
        assert!(n.contains(ip("2001:db8::1")));
        assert!(n.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!n.contains(ip("2001:db9::")));
        assert!(!n.contains(ip("10.0.0.1")));
        let host = cidr("2001:db8::7/128");
        assert_eq!(host, cidr("2001:db8::7"));
        assert!(host.contains(ip("2001:db8::7")));
        assert!(!host.contains(ip("2001:db8::8")));
        assert_eq!(cidr("::1").to_string(), "::1/128");
    }

    #[test]
    fn ipv4_mapped_sources_and_entries() {
        let n = cidr("10.0.0.0/8");
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("::ffff:11.1.2.3")));
        // Written as a mapped IPv6 network, it is the same network.
        assert_eq!(cidr("::ffff:10.0.0.0/104"), n);
        assert_eq!(cidr("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert!(cidr("::ffff:127.0.0.2").contains(ip("127.0.0.2")));
        // IPv4-compatible (deprecated ::a.b.c.d) is not the same as IPv4.
        assert!(!n.contains(ip("::10.1.2.3")));
    }

    #[test]
    fn bad_entries() {
        for (entry, why) in [
            ("10.0.0.300/8", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/33", "longer than /32"),
            ("2001:db8::/129", "longer than /128"),
            ("10.0.0.0/", "not a number"),
            ("10.0.0.0/+8", "not a number"),
            ("10.0.0.0/8/8", "not a number"),
            ("10.0.0.0/-1", "not a number"),
            (
                "10.0.0.1/8",
                "host bits set under /8: the network is 10.0.0.0/8",
            ),
            ("2001:db8::1/32", "the network is 2001:db8::/32"),
            ("example.com", "not an IPv4 or IPv6 address"),
            ("[::1]", "not an IPv4 or IPv6 address"),
            ("fe80::1%eth0", "not an IPv4 or IPv6 address"),
            ("", "empty entry"),
            ("   ", "empty entry"),
        ] {
            let e = entry.parse::<Cidr>().unwrap_err();
            assert!(e.contains(why), "{entry:?}: {e}");
        }
    }

    #[test]
    fn list_errors_name_the_entry() {
        let e = AllowList::parse(&["127.0.0.1", "::1", "10.0.0.300/8"]).unwrap_err();
        assert!(e.starts_with("sip.allow_from[2] \"10.0.0.300/8\": "), "{e}");
        assert!(AllowList::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn empty_list_permits_everyone_otherwise_only_members() {
        let open = AllowList::default();
        assert!(open.permits(ip("203.0.113.9")));
        let list = AllowList::parse(&["127.0.0.2/32", "2001:db8::/48"]).unwrap();
        assert!(list.permits(ip("127.0.0.2")));
        assert!(list.permits(ip("::ffff:127.0.0.2")));
        assert!(list.permits(ip("2001:db8:0:1::5")));
        assert!(!list.permits(ip("127.0.0.1")));
        assert!(!list.permits(ip("2001:db8:1::5")));
    }

    #[test]
    fn which_requests_are_screened() {
        use rsip::Method::*;
        for m in [
            Invite, Register, Subscribe, Message, Refer, Publish, Bye, Info, Notify,
        ] {
            assert!(screened(&m, false), "{m}");
        }
        for m in [Options, Ack, Cancel] {
            assert!(!screened(&m, false), "{m}");
        }
        for m in [Invite, Bye, Info, Notify, Options] {
            assert!(!screened(&m, true), "in-dialog {m}");
        }
        // A To tag does not make a REGISTER in-dialog.
        assert!(screened(&Register, true));
    }
}
