//! RFC 3261 §12 dialogs.
//!
//! A [`Dialog`] holds the state that in-dialog requests need — Call-ID, tags, local and remote
//! CSeq, remote target, route set — and builds those requests so that the TU never assembles
//! `From`/`To`/`Route` by hand. Like the rest of the crate it is pure data: it does not send
//! anything; the shell sends what it builds through the transaction layer to [`Dialog::next_hop`].

use std::net::{IpAddr, SocketAddr};

use rsip::{Header, Method, Request, Response};

use crate::message::{
    self, call_id, contact_uri, cseq, from_tag, header_value, list_values, new_branch, to_tag,
    NameAddr, ViaSpec,
};
use crate::transaction::TransportKind;

/// Identifies a dialog from our point of view (RFC 3261 §12: Call-ID + local tag + remote tag).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// `Call-ID`.
    pub call_id: String,
    /// Our tag (`From` tag of requests we send, `To` tag of requests we receive).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Why a dialog could not be created or a request does not fit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header needed to build the dialog is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A tag is absent (`From` tag of an INVITE, `To` tag of the response).
    #[error("missing {0} tag")]
    MissingTag(&'static str),
    /// No usable `Contact` URI (RFC 3261 §12.1.1/§12.1.2 require one).
    #[error("missing or invalid Contact")]
    MissingContact,
    /// The response does not create a dialog (only 101–299 do).
    #[error("status {0} does not establish a dialog")]
    NotEstablishing(u16),
    /// The request's Call-ID or tags are not this dialog's.
    #[error("request does not belong to this dialog")]
    Mismatch,
    /// RFC 3261 §12.2.2: CSeq lower than the last one: answer 500.
    #[error("CSeq {got} lower than the last remote CSeq {last}")]
    OutOfOrder {
        /// CSeq of the request.
        got: u32,
        /// Highest CSeq seen so far.
        last: u32,
    },
}

/// Where to send in-dialog requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// The target is an IP literal: send there.
    Addr {
        /// Destination.
        addr: SocketAddr,
        /// From the URI's `transport` parameter (`sips:` and `tls` map to TCP).
        transport: TransportKind,
    },
    /// The target is a host name: the shell must resolve it (RFC 3263); no DNS here.
    Name {
        /// Host name.
        host: String,
        /// Explicit port, if any.
        port: Option<u16>,
        /// From the URI's `transport` parameter.
        transport: TransportKind,
        /// The full URI, for SRV/NAPTR logic.
        uri: rsip::Uri,
    },
}

/// One dialog (UAC or UAS side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    local_seq: u32,
    remote_seq: Option<u32>,
    /// `From` value of our requests (with our tag).
    local_party: String,
    /// `To` value of our requests (with the peer's tag).
    remote_party: String,
    remote_target: rsip::Uri,
    /// Route values in the order they go into `Route` headers.
    route_set: Vec<String>,
    local_contact: rsip::Uri,
    /// Built from a provisional response: the 2xx may still change the route set.
    early: bool,
}

fn is_target_refresh(m: Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify
    )
}

impl Dialog {
    /// UAS side: built from the incoming INVITE and the To-tag we put in our 2xx (if the INVITE's
    /// `To` already had a tag, that one is used, as [`message::make_response`] keeps it);
    /// `local_contact` is our Contact URI. Route set = the INVITE's `Record-Route`s in order
    /// (§12.1.1).
    pub fn new_uas(
        invite: &Request,
        local_tag: &str,
        local_contact: rsip::Uri,
    ) -> Result<Dialog, DialogError> {
        let call_id = call_id(invite).ok_or(DialogError::MissingHeader("Call-ID"))?;
        let remote_tag = from_tag(invite).ok_or(DialogError::MissingTag("From"))?;
        let remote_target = contact_uri(invite).ok_or(DialogError::MissingContact)?;
        let (remote_seq, _) = cseq(invite).ok_or(DialogError::MissingHeader("CSeq"))?;
        let to = header_value(invite, "To").ok_or(DialogError::MissingHeader("To"))?;
        let from = header_value(invite, "From").ok_or(DialogError::MissingHeader("From"))?;
        let (local_tag, local_party) = match to_tag(invite) {
            Some(t) => (t, to),
            None => (local_tag.to_string(), format!("{to};tag={local_tag}")),
        };
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            local_seq: 0,
            remote_seq: Some(remote_seq),
            local_party,
            remote_party: from,
            remote_target,
            route_set: list_values(invite, "Record-Route"),
            local_contact,
            early: false,
        })
    }

    /// UAC side: from our INVITE and the 2xx (or 1xx with To-tag) received. Route set = the
    /// response's `Record-Route`s reversed (§12.1.2); remote target = its `Contact`.
    pub fn new_uac(invite: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let code = response.status_code.code();
        if !(101..=299).contains(&code) {
            return Err(DialogError::NotEstablishing(code));
        }
        let call_id = call_id(invite).ok_or(DialogError::MissingHeader("Call-ID"))?;
        let local_tag = from_tag(invite).ok_or(DialogError::MissingTag("From"))?;
        let remote_tag = to_tag(response).ok_or(DialogError::MissingTag("To"))?;
        let remote_target = contact_uri(response).ok_or(DialogError::MissingContact)?;
        let local_contact = contact_uri(invite).ok_or(DialogError::MissingContact)?;
        let (local_seq, _) = cseq(invite).ok_or(DialogError::MissingHeader("CSeq"))?;
        let from = header_value(invite, "From").ok_or(DialogError::MissingHeader("From"))?;
        let to = header_value(response, "To").ok_or(DialogError::MissingHeader("To"))?;
        let mut route_set = list_values(response, "Record-Route");
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            local_seq,
            remote_seq: None,
            local_party: from,
            remote_party: to,
            remote_target,
            route_set,
            local_contact,
            early: code < 200,
        })
    }

    /// UAC: a 2xx for an early dialog (built from a 1xx) or for a re-INVITE arrived. The remote
    /// target follows its `Contact` (§12.2.1.2); for an early dialog the route set is recomputed
    /// from the 2xx (§12.1.2) and the dialog becomes confirmed.
    pub fn update_from_response(&mut self, response: &Response) {
        if !(200..=299).contains(&response.status_code.code()) {
            return;
        }
        if let Some(target) = contact_uri(response) {
            self.remote_target = target;
        }
        if self.early {
            let mut route_set = list_values(response, "Record-Route");
            route_set.reverse();
            self.route_set = route_set;
            self.early = false;
        }
    }

    /// The dialog's identifier.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Whether the dialog was built from a provisional response and not yet confirmed.
    pub fn is_early(&self) -> bool {
        self.early
    }

    /// Last CSeq number we used.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// Highest CSeq number the peer used, if it sent any request.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Current remote target (the peer's Contact).
    pub fn remote_target(&self) -> &rsip::Uri {
        &self.remote_target
    }

    /// Route set, in `Route` header order.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// Our Contact URI.
    pub fn local_contact(&self) -> &rsip::Uri {
        &self.local_contact
    }

    /// Request-URI and Route values per §12.2.1.1 (loose routing, or strict routing when the
    /// first route lacks `;lr`).
    fn routing(&self) -> (rsip::Uri, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let parsed = NameAddr::parse(first);
        let loose = parsed.as_ref().is_none_or(|n| uri_has_lr(&n.uri));
        match parsed.and_then(|n| n.rsip_uri()) {
            Some(first_uri) if !loose => {
                let mut routes: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
                routes.push(format!("<{}>", self.remote_target));
                (first_uri, routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }

    fn base_request(&self, method: Method, seq: u32, via: &ViaSpec) -> Request {
        let (uri, routes) = self.routing();
        let mut headers: Vec<Header> = vec![
            message::make_header("Via", &via.value(&new_branch())),
            message::make_header("Max-Forwards", "70"),
        ];
        for r in routes {
            headers.push(message::make_header("Route", &r));
        }
        headers.push(message::make_header("From", &self.local_party));
        headers.push(message::make_header("To", &self.remote_party));
        headers.push(message::make_header("Call-ID", &self.id.call_id));
        headers.push(message::make_header("CSeq", &format!("{seq} {method}")));
        if is_target_refresh(method) || method == Method::Refer {
            headers.push(message::make_header(
                "Contact",
                &format!("<{}>", self.local_contact),
            ));
        }
        headers.push(message::make_header("Content-Length", "0"));
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }

    /// New in-dialog request (BYE, INFO, REFER, re-INVITE…): Request-URI = remote target, Route
    /// from route set, From/To with tags, Call-ID, incremented local CSeq, Max-Forwards 70, a
    /// fresh Via branch, Contact for target-refresh methods and REFER, Content-Length 0. Set a
    /// body afterwards if needed ([`message::to_bytes`] fixes Content-Length).
    pub fn make_request(&mut self, method: Method, via: &ViaSpec) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        self.base_request(method, self.local_seq, via)
    }

    /// ACK for a 2xx (UAC, §13.2.2.4): same CSeq number as the INVITE, new branch, the
    /// dialog's routing. Add the SDP answer as body if the INVITE had no offer.
    pub fn make_ack(&self, invite_cseq: u32, via: &ViaSpec) -> Request {
        self.base_request(Method::Ack, invite_cseq, via)
    }

    /// Check an in-dialog request (§12.2.2): it must carry this dialog's Call-ID and tags, its
    /// CSeq must not be lower than the last one (→ `Err`, answer 500), and a target-refresh
    /// request (INVITE, UPDATE, SUBSCRIBE, NOTIFY) with a Contact updates the remote target.
    /// ACK and CANCEL reuse the INVITE's CSeq and are not checked against it.
    pub fn on_remote_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if dialog_id_for_incoming(req).as_ref() != Some(&self.id) {
            return Err(DialogError::Mismatch);
        }
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let (seq, _) = cseq(req).ok_or(DialogError::MissingHeader("CSeq"))?;
        if let Some(last) = self.remote_seq {
            if seq < last {
                return Err(DialogError::OutOfOrder { got: seq, last });
            }
        }
        self.remote_seq = Some(seq);
        if is_target_refresh(req.method) {
            if let Some(target) = contact_uri(req) {
                self.remote_target = target;
            }
        }
        Ok(())
    }

    /// Where to send in-dialog requests: the first route if there is a route set, else the
    /// remote target. IP literals are resolved to an address (port default 5060, 5061 for
    /// `sips:`); host names are returned for the shell to resolve.
    pub fn next_hop(&self) -> NextHop {
        let uri = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .and_then(|n| n.rsip_uri())
            .unwrap_or_else(|| self.remote_target.clone());
        next_hop_for_uri(&uri)
    }
}

/// [`Dialog::next_hop`] logic for any URI (useful for initial requests too).
pub fn next_hop_for_uri(uri: &rsip::Uri) -> NextHop {
    let sips = matches!(uri.scheme, Some(rsip::Scheme::Sips));
    // A `sips:` URI means TLS on every hop, whatever `transport=` says
    // (RFC 5630 §3.1.3: `transport=tcp` there is TLS over TCP).
    let transport = match uri.transport() {
        _ if sips => TransportKind::Tls,
        Some(rsip::Transport::Udp) => TransportKind::Udp,
        Some(rsip::Transport::Tls) | Some(rsip::Transport::TlsSctp) => TransportKind::Tls,
        Some(_) => TransportKind::Tcp,
        None => TransportKind::Udp,
    };
    let port: Option<u16> = uri.port().map(|p| u16::from(*p));
    let ip = match &uri.host_with_port.host {
        rsip::Host::IpAddr(ip) => Some(*ip),
        rsip::Host::Domain(d) => d
            .to_string()
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok(),
    };
    match ip {
        Some(ip) => NextHop::Addr {
            addr: SocketAddr::new(
                ip,
                port.unwrap_or(if transport == TransportKind::Tls {
                    5061
                } else {
                    5060
                }),
            ),
            transport,
        },
        None => NextHop::Name {
            host: uri.host_with_port.host.to_string(),
            port,
            transport,
            uri: uri.clone(),
        },
    }
}

fn uri_has_lr(uri: &str) -> bool {
    uri.split(';').skip(1).any(|p| {
        p.trim().eq_ignore_ascii_case("lr") || p.trim().to_ascii_lowercase().starts_with("lr=")
    })
}

/// Dialog ID of an incoming in-dialog request as seen from our side (local = `To` tag, remote =
/// `From` tag). `None` for out-of-dialog requests (no `To` tag).
pub fn dialog_id_for_incoming(req: &Request) -> Option<DialogId> {
    Some(DialogId {
        call_id: call_id(req)?,
        local_tag: to_tag(req)?,
        remote_tag: from_tag(req)?,
    })
}

/// Dialog ID of a response to one of our requests (local = `From` tag, remote = `To` tag).
pub fn dialog_id_for_response(resp: &Response) -> Option<DialogId> {
    Some(DialogId {
        call_id: call_id(resp)?,
        local_tag: from_tag(resp)?,
        remote_tag: to_tag(resp)?,
    })
}

#[cfg(test)]
mod tests;
