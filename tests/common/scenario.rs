//! Builds SIPp XML scenarios, so each test states its call flow in a few
//! lines instead of a page of XML. The XML is plain SIPp: the same files can
//! be written out and run by hand (`RINGBACK_KEEP_SCENARIOS=1`).

#![allow(dead_code)]

/// Caller number used in From.
pub const CALLER: &str = "+15550123";

/// A UAC scenario under construction.
pub struct Uac {
    from_user: Option<String>,
    steps: Vec<String>,
    cseq: u32,
    codecs: &'static str,
    media_port: Option<u16>,
}

impl Uac {
    /// INVITE with PCMU + PCMA + telephone-event/8000 (PT 101), then ACK.
    pub fn new() -> Uac {
        Uac {
            from_user: None,
            steps: Vec::new(),
            cseq: 1,
            codecs: "pcmu,pcma",
            media_port: None,
        }
    }

    /// Offer only these codecs (`pcmu`, `pcma`, `g722`…), before `invite()`.
    pub fn codecs(mut self, c: &'static str) -> Uac {
        self.codecs = c;
        self
    }

    /// Advertise this RTP port instead of SIPp's own media port (a test
    /// socket then receives the server's RTP).
    pub fn media_port(mut self, p: u16) -> Uac {
        self.media_port = Some(p);
        self
    }

    fn sdp(&self) -> String {
        let mut pts = Vec::new();
        let mut maps = Vec::new();
        for c in self.codecs.split(',') {
            match c {
                "pcmu" => {
                    pts.push("0");
                    maps.push("a=rtpmap:0 PCMU/8000");
                }
                "pcma" => {
                    pts.push("8");
                    maps.push("a=rtpmap:8 PCMA/8000");
                }
                "g722" => {
                    pts.push("9");
                    maps.push("a=rtpmap:9 G722/8000");
                }
                "opus" => {
                    pts.push("111");
                    maps.push("a=rtpmap:111 opus/48000/2");
                }
                other => panic!("unknown codec {other}"),
            }
        }
        pts.push("101");
        maps.push("a=rtpmap:101 telephone-event/8000");
        maps.push("a=fmtp:101 0-15");
        let port = self
            .media_port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "[media_port]".into());
        format!(
            "v=0\no=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio {port} RTP/AVP {}\n{}\na=ptime:20\n",
            pts.join(" "),
            maps.join("\n")
        )
    }

    fn invite_msg(&self) -> String {
        format!(
            "INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv;rport\n\
From: \"Test Caller\" <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>\n\
Call-ID: [call_id]\n\
CSeq: 1 INVITE\n\
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>\n\
Max-Forwards: 70\n\
User-Agent: SIPp ringback-test\n\
Content-Type: application/sdp\n\
Content-Length: [len]\n\
\n\
{}",
            self.sdp()
        )
    }

    fn push_send(&mut self, msg: &str, retrans: bool) {
        let r = if retrans { " retrans=\"500\"" } else { "" };
        self.steps.push(format!(
            "<send{r}><![CDATA[\n{}\n]]></send>",
            msg.trim_end()
        ));
    }

    fn in_dialog(&mut self, method: &str, extra: &str, body: &str) -> String {
        self.cseq += 1;
        format!(
            "{method} [next_url] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
From: \"Test Caller\" <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
Call-ID: [call_id]\n\
CSeq: {} {method}\n\
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>\n\
Max-Forwards: 70\n\
{extra}Content-Length: [len]\n\
\n\
{body}",
            self.cseq
        )
    }

    /// Send the INVITE, accept 100/180, expect 200, send ACK.
    pub fn invite(mut self) -> Uac {
        let m = self.invite_msg();
        self.push_send(&m, true);
        self.steps
            .push(r#"<recv response="100" optional="true"/>"#.into());
        self.steps
            .push(r#"<recv response="180" optional="true"/>"#.into());
        self.steps
            .push(r#"<recv response="200" rrs="true" rtd="true"/>"#.into());
        let ack = format!(
            "ACK [next_url] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
From: \"Test Caller\" <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
Call-ID: [call_id]\n\
CSeq: 1 ACK\n\
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>\n\
Max-Forwards: 70\n\
Content-Length: 0\n"
        );
        self.push_send(&ack, false);
        self
    }

    /// Send the INVITE and expect a final error `code` (then ACK it).
    pub fn invite_rejected(mut self, code: u16) -> Uac {
        let m = self.invite_msg();
        self.push_send(&m, true);
        self.steps
            .push(r#"<recv response="100" optional="true"/>"#.into());
        self.steps.push(format!(r#"<recv response="{code}"/>"#));
        self.push_send(&Self::ack_non_2xx(), false);
        self
    }

    fn ack_non_2xx() -> String {
        format!(
            "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv;rport\n\
From: \"Test Caller\" <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
Call-ID: [call_id]\n\
CSeq: 1 ACK\n\
Max-Forwards: 70\n\
Content-Length: 0\n"
        )
    }

    /// INVITE, wait for 180, CANCEL, expect 200 (CANCEL) and 487, ACK.
    pub fn invite_then_cancel(mut self) -> Uac {
        let m = self.invite_msg();
        self.push_send(&m, true);
        self.steps
            .push(r#"<recv response="100" optional="true"/>"#.into());
        self.steps.push(r#"<recv response="180"/>"#.into());
        let cancel = format!(
            "CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv;rport\n\
From: \"Test Caller\" <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>\n\
Call-ID: [call_id]\n\
CSeq: 1 CANCEL\n\
Max-Forwards: 70\n\
Content-Length: 0\n"
        );
        self.push_send(&cancel, true);
        self.steps.push(r#"<recv response="200"/>"#.into());
        self.steps.push(r#"<recv response="487"/>"#.into());
        self.push_send(&Self::ack_non_2xx(), false);
        self
    }

    /// Pause.
    pub fn pause(mut self, ms: u64) -> Uac {
        self.steps.push(format!(r#"<pause milliseconds="{ms}"/>"#));
        self
    }

    /// One digit by SIP INFO (`application/dtmf-relay`), expect 200.
    pub fn info_digit(mut self, d: char) -> Uac {
        let m = self.in_dialog(
            "INFO",
            "Content-Type: application/dtmf-relay\n",
            &format!("Signal={d}\nDuration=160\n"),
        );
        self.push_send(&m, true);
        self.steps.push(r#"<recv response="200"/>"#.into());
        self
    }

    /// One digit by SIP INFO (`application/dtmf`), expect 200.
    pub fn info_digit_plain(mut self, d: char) -> Uac {
        let m = self.in_dialog(
            "INFO",
            "Content-Type: application/dtmf\n",
            &format!("{d}\n"),
        );
        self.push_send(&m, true);
        self.steps.push(r#"<recv response="200"/>"#.into());
        self
    }

    /// One digit as RFC 4733 packets replayed from SIPp's shipped pcaps.
    pub fn rfc4733_digit(mut self, d: char) -> Uac {
        let name = match d {
            '*' => "star".to_string(),
            '#' => "pound".to_string(),
            c => c.to_string(),
        };
        let pcap = pcap_dir().join(format!("dtmf_2833_{name}.pcap"));
        self.steps.push(format!(
            r#"<nop><action><exec play_pcap_audio="{}"/></action></nop>"#,
            pcap.display()
        ));
        // The pcap lasts ~140 ms; leave room before the next one.
        self.steps.push(r#"<pause milliseconds="400"/>"#.into());
        self
    }

    /// Caller hangs up: BYE, expect 200.
    pub fn bye(mut self) -> Uac {
        let m = self.in_dialog("BYE", "", "");
        self.push_send(&m, true);
        self.steps.push(r#"<recv response="200"/>"#.into());
        self
    }

    /// Wait (up to `timeout_ms`) for the server's BYE and answer 200.
    pub fn expect_bye(mut self, timeout_ms: u64) -> Uac {
        self.steps
            .push(format!(r#"<recv request="BYE" timeout="{timeout_ms}"/>"#));
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self
    }

    /// Nothing arrives for `ms` (a BYE or any other request fails the
    /// scenario); the scenario then ends without hanging up.
    pub fn silence(mut self, ms: u64) -> Uac {
        let label = format!("quiet{}", self.steps.len());
        self.steps.push(format!(
            r#"<recv request="NEVER" timeout="{ms}" ontimeout="{label}"/>"#
        ));
        // A jump to a label that ends the scenario fails the call: a step follows.
        self.steps.push(format!(r#"<label id="{label}"/>"#));
        self.steps.push("<nop/>".into());
        self
    }

    /// Expect a REFER and answer it with `code`.
    pub fn expect_refer(mut self, code: u16, timeout_ms: u64) -> Uac {
        self.steps
            .push(format!(r#"<recv request="REFER" timeout="{timeout_ms}"/>"#));
        self.steps.push(format!(
            "<send><![CDATA[\nSIP/2.0 {code} Whatever\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
        ));
        self
    }

    /// In-dialog NOTIFY carrying a `message/sipfrag` transfer result, expect 200.
    pub fn notify_sipfrag(mut self, status_line: &str) -> Uac {
        let m = self.in_dialog(
            "NOTIFY",
            "Event: refer\nSubscription-State: terminated;reason=noresource\nContent-Type: message/sipfrag\n",
            &format!("{status_line}\n"),
        );
        self.push_send(&m, true);
        self.steps.push(r#"<recv response="200"/>"#.into());
        self
    }

    /// Call as this user (From) instead of [`CALLER`].
    pub fn calling_as(mut self, user: &str) -> Uac {
        self.from_user = Some(user.to_string());
        self
    }

    /// The XML.
    pub fn xml(&self) -> String {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"ringback test\">\n{}\n</scenario>\n",
            self.steps.join("\n")
        );
        match &self.from_user {
            Some(u) => xml.replace(&format!("<sip:{CALLER}@"), &format!("<sip:{u}@")),
            None => xml,
        }
    }
}

impl Default for Uac {
    fn default() -> Self {
        Uac::new()
    }
}

/// OPTIONS ping, expect 200.
pub fn options() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"options\">\n<send retrans=\"500\"><![CDATA[\n\
OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]opt[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>\n\
Call-ID: [call_id]\n\
CSeq: 1 OPTIONS\n\
Max-Forwards: 70\n\
Content-Length: 0\n\
]]></send>\n<recv response=\"200\"/>\n</scenario>\n"
    )
}

/// Where Debian's sip-tester keeps the RFC 4733 pcaps.
pub fn pcap_dir() -> std::path::PathBuf {
    for d in [
        "/usr/share/sip-tester",
        "/usr/share/doc/sip-tester/pcap",
        "/usr/share/sipp/pcap",
    ] {
        let p = std::path::Path::new(d);
        if p.join("dtmf_2833_1.pcap").exists() {
            return p.to_path_buf();
        }
    }
    panic!("SIPp's dtmf_2833_*.pcap files not found (install sip-tester)");
}

/// REGISTER as `user` with digest `password`; expect `final_code` after the
/// challenge (200 for the right password, 403 for a wrong one).
pub fn register(user: &str, password: &str, expires: u32, final_code: u16) -> String {
    let msg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:[remote_ip]:[remote_port] SIP/2.0\n\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
From: <sip:{user}@[remote_ip]>;tag=[pid]reg[call_number]\n\
To: <sip:{user}@[remote_ip]>\n\
Call-ID: [call_id]\n\
CSeq: {cseq} REGISTER\n\
Contact: <sip:{user}@[local_ip]:[local_port]>\n\
Expires: {expires}\n\
Max-Forwards: 70\n\
User-Agent: SIPp agent\n\
{auth}Content-Length: 0\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"register\">\n\
<send retrans=\"500\"><![CDATA[\n{}]]></send>\n\
<recv response=\"401\" auth=\"true\"/>\n\
<send retrans=\"500\"><![CDATA[\n{}]]></send>\n\
<recv response=\"{final_code}\"/>\n</scenario>\n",
        msg(1, ""),
        msg(
            2,
            &format!("[authentication username={user} password={password}]\n")
        )
    )
}

/// An agent's phone (a SIPp UAS) receiving one call from ringback.
pub struct AgentPhone {
    steps: Vec<String>,
}

impl AgentPhone {
    /// Wait for the INVITE (and remember its CSeq for a 487).
    pub fn new(timeout_ms: u64) -> AgentPhone {
        AgentPhone {
            steps: vec![format!(
                "<recv request=\"INVITE\" crlf=\"true\" timeout=\"{timeout_ms}\"/>"
            )],
        }
    }

    fn reply(code: u16, extra: &str, body: &str) -> String {
        format!(
            "<send><![CDATA[\nSIP/2.0 {code} Reply\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]agent[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:agent@[local_ip]:[local_port]>\n{extra}Content-Length: [len]\n\n{body}]]></send>"
        )
    }

    /// 180 Ringing.
    pub fn ring(mut self) -> AgentPhone {
        self.steps.push(Self::reply(180, "", ""));
        self
    }

    /// `100 Trying` (no To tag), as every real phone and carrier sends first.
    pub fn trying(mut self) -> AgentPhone {
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 100 Trying\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self
    }

    fn sdp(rtp_port: u16) -> String {
        format!(
            "v=0\no=agent 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {rtp_port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"
        )
    }

    /// `183 Session Progress` with SDP (early media from `rtp_port`).
    pub fn progress_with_sdp(mut self, rtp_port: u16) -> AgentPhone {
        self.steps.push(Self::reply(
            183,
            "Content-Type: application/sdp\n",
            &Self::sdp(rtp_port),
        ));
        self
    }

    /// `183` without SDP.
    pub fn progress(mut self) -> AgentPhone {
        self.steps.push(Self::reply(183, "", ""));
        self
    }

    /// A reliable `183` with SDP (`Require: 100rel`, `RSeq: rseq`), resent
    /// until the PRACK arrives; the PRACK must carry `RAck: rseq <cseq> INVITE`
    /// and gets 200.
    pub fn reliable_progress(mut self, rtp_port: u16, rseq: u32) -> AgentPhone {
        self.steps.push(
            Self::reply(
                183,
                &format!("Require: 100rel\nRSeq: {rseq}\nContent-Type: application/sdp\n"),
                &Self::sdp(rtp_port),
            )
            .replace("<send>", "<send retrans=\"500\">"),
        );
        self.steps.push(format!(
            "<recv request=\"PRACK\"><action><ereg regexp=\"^ *{rseq} [0-9]+ INVITE$\" search_in=\"hdr\" header=\"RAck:\" check_it=\"true\" assign_to=\"rack{rseq}\"/></action></recv>"
        ));
        self.steps.push(format!(
            "<nop><action><log message=\"PRACK ok [$rack{rseq}]\"/></action></nop>"
        ));
        self.steps.push(
            "<send><!--prack-ok--><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self
    }

    /// SIPp's `[last_*]` fields name the last message received: after a
    /// PRACK, and in sends marked `<!--inv-->` (a response to the INVITE
    /// sent after its ACK), responses use the INVITE's headers captured at
    /// the start instead.
    fn steps_with_invite_headers(&self) -> Vec<String> {
        let mut steps = self.steps.clone();
        if !steps
            .iter()
            .any(|s| s.contains("prack-ok") || s.contains("<!--inv-->"))
        {
            return steps;
        }
        let capture = ["Via", "From", "To", "CSeq"]
            .iter()
            .map(|h| {
                format!(
                    "<ereg regexp=\".*\" search_in=\"hdr\" header=\"{h}:\" assign_to=\"inv{}\"/>",
                    h.to_ascii_lowercase()
                )
            })
            .collect::<String>();
        if let Some(first) = steps.first_mut() {
            *first = if first.contains("<action>") {
                first.replacen("<action>", &format!("<action>{capture}"), 1)
            } else {
                first.replacen("/>", &format!("><action>{capture}</action></recv>"), 1)
            };
        }
        let mut after_prack = false;
        for step in steps.iter_mut().skip(1) {
            if step.contains("prack-ok") {
                after_prack = true;
            } else if step.starts_with("<recv") && !step.contains("PRACK") {
                after_prack = false;
            } else if (after_prack && step.starts_with("<send")) || step.contains("<!--inv-->") {
                *step = step
                    .replace("[last_Via:]", "Via:[$invvia]")
                    .replace("[last_From:]", "From:[$invfrom]")
                    .replace("[last_To:]", "To:[$invto]")
                    .replace("[last_CSeq:]", "CSeq:[$invcseq]");
            }
        }
        steps
    }

    /// Answer, then send the 200 again after the ACK (as a phone whose ACK
    /// was lost does): it must be ACKed again. SIPp takes that identical
    /// ACK for a retransmission and does not match it (so the step only
    /// waits a moment); the trace shows whether it came.
    pub fn answer_twice(mut self, rtp_port: u16) -> AgentPhone {
        let ok = Self::reply(200, "Content-Type: application/sdp\n", &Self::sdp(rtp_port));
        self.steps.push(ok.clone());
        self.steps.push("<recv request=\"ACK\"/>".into());
        self.steps
            .push(ok.replacen("<send>", "<send><!--inv-->", 1));
        self.steps
            .push("<recv request=\"ACK\" timeout=\"1500\" ontimeout=\"acked\"/>".into());
        self.steps.push("<label id=\"acked\"/>".into());
        self
    }

    /// Answer from two forks (a second 200 with another To tag after the
    /// first was ACKed): ringback keeps the first, ACKs the second and ends
    /// it with BYE.
    pub fn answer_with_fork(mut self, rtp_port: u16) -> AgentPhone {
        let ok = Self::reply(200, "Content-Type: application/sdp\n", &Self::sdp(rtp_port));
        self.steps.push(ok.clone());
        self.steps.push("<recv request=\"ACK\"/>".into());
        self.steps.push(
            ok.replacen("<send>", "<send><!--inv-->", 1)
                .replace("tag=[pid]agent[call_number]", "tag=[pid]fork[call_number]"),
        );
        self.steps.push("<recv request=\"ACK\"/>".into());
        self.steps.push(
            "<recv request=\"BYE\" timeout=\"5000\"><action><ereg regexp=\"tag=[0-9]+fork\" search_in=\"hdr\" header=\"To:\" check_it=\"true\" assign_to=\"forktag\"/></action></recv>"
                .into(),
        );
        self.steps
            .push("<nop><action><log message=\"fork ended [$forktag]\"/></action></nop>".into());
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self
    }

    /// Challenge the INVITE with 401 (MD5, qop=auth) as a carrier does,
    /// expect the ACK, then the INVITE again whose credentials must verify
    /// for `user`/`password` (a wrong answer is refused with 403 and the
    /// scenario fails).
    pub fn challenge(mut self, user: &str, password: &str) -> AgentPhone {
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 401 Unauthorized\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]auth[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nWWW-Authenticate: Digest realm=\"carrier.example\", nonce=\"[pid]n[call_number]\", algorithm=MD5, qop=\"auth\"\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps.push("<recv request=\"ACK\"/>".into());
        self.steps.push(format!(
            "<recv request=\"INVITE\" timeout=\"5000\"><action><verifyauth assign_to=\"authvalid\" username=\"{user}\" password=\"{password}\"/></action></recv>"
        ));
        self.steps
            .push("<nop test=\"authvalid\" next=\"authok\"/>".into());
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 403 Bad Credentials\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]auth[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps
            .push("<recv request=\"NEVER\" timeout=\"1000\"/>".into());
        self.steps.push("<label id=\"authok\"/>".into());
        self
    }

    /// Answer with PCMU + telephone-event, media at `rtp_port`; expect ACK.
    pub fn answer(mut self, rtp_port: u16) -> AgentPhone {
        let sdp = format!(
            "v=0\no=agent 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {rtp_port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"
        );
        self.steps.push(
            Self::reply(200, "Content-Type: application/sdp\n", &sdp)
                .replace("<send>", "<send retrans=\"500\">"),
        );
        self.steps.push("<recv request=\"ACK\"/>".into());
        self
    }

    /// Answer with SIPp's own media port (so it can play RFC 4733 pcaps).
    pub fn answer_own_media(self) -> AgentPhone {
        let mut me = self.answer(1);
        if let Some(step) = me.steps.iter_mut().rev().find(|s| s.contains("m=audio 1 ")) {
            *step = step.replace("m=audio 1 ", "m=audio [media_port] ");
        }
        me
    }

    /// Press a key (RFC 4733, from SIPp's shipped pcaps).
    pub fn press(mut self, d: char) -> AgentPhone {
        let pcap = pcap_dir().join(format!("dtmf_2833_{d}.pcap"));
        self.steps.push(format!(
            r#"<nop><action><exec play_pcap_audio="{}"/></action></nop>"#,
            pcap.display()
        ));
        self.steps.push(r#"<pause milliseconds="400"/>"#.into());
        self
    }

    /// Pause.
    pub fn pause(mut self, ms: u64) -> AgentPhone {
        self.steps.push(format!(r#"<pause milliseconds="{ms}"/>"#));
        self
    }

    /// Hang up (send BYE as the answering side), expect 200.
    pub fn hang_up(mut self) -> AgentPhone {
        // Remember the INVITE's From and To (swapped for our BYE) and its
        // Contact (the BYE's target); only now, as SIPp refuses variables
        // that are set but never used.
        if let Some(first) = self.steps.first_mut() {
            *first = first.replacen(
                "<recv request=\"INVITE\"",
                "<recv request=\"INVITE\" rrs=\"true\"",
                1,
            );
            let capture = "<action><ereg regexp=\".*\" search_in=\"hdr\" header=\"From:\" assign_to=\"theirs\"/><ereg regexp=\".*\" search_in=\"hdr\" header=\"To:\" assign_to=\"ours\"/></action>";
            *first = if first.ends_with("</recv>") {
                first.replacen("<action>", &capture.replace("</action>", ""), 1)
            } else {
                first.replacen("/>", &format!(">{capture}</recv>"), 1)
            };
        }
        self.steps.push(
            "<send retrans=\"500\"><![CDATA[\nBYE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: [$ours];tag=[pid]agent[call_number]\nTo: [$theirs]\nCall-ID: [call_id]\nCSeq: 20 BYE\nMax-Forwards: 70\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps.push("<recv response=\"200\"/>".into());
        self
    }

    /// Refuse with `code` (486 busy, 603 decline); expect ACK.
    pub fn refuse(mut self, code: u16) -> AgentPhone {
        self.steps.push(Self::reply(code, "", ""));
        self.steps.push("<recv request=\"ACK\"/>".into());
        self
    }

    /// Keep ringing until ringback CANCELs: 200 to the CANCEL, 487 to the
    /// INVITE, expect ACK.
    pub fn until_cancel(mut self, timeout_ms: u64) -> AgentPhone {
        // Remember the INVITE's CSeq number for the 487 (SIPp refuses a
        // variable that is assigned but never used, so only here).
        if let Some(first) = self.steps.first_mut() {
            *first = first.replace(
                "/>",
                "><action><ereg regexp=\"[0-9]+\" search_in=\"hdr\" header=\"CSeq:\" assign_to=\"cseqnum\"/></action></recv>",
            );
        }
        self.steps.push(format!(
            "<recv request=\"CANCEL\" timeout=\"{timeout_ms}\"/>"
        ));
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]agent[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]agent[call_number]\n[last_Call-ID:]\nCSeq: [$cseqnum] INVITE\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps.push("<recv request=\"ACK\"/>".into());
        self
    }

    /// Expect ringback's BYE, challenge it with 401 as carriers do, and
    /// answer 200 to the BYE sent again, whose credentials must verify for
    /// `user`/`password` (otherwise 403 and the scenario fails).
    pub fn expect_challenged_bye(
        mut self,
        user: &str,
        password: &str,
        timeout_ms: u64,
    ) -> AgentPhone {
        self.steps
            .push(format!("<recv request=\"BYE\" timeout=\"{timeout_ms}\"/>"));
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 401 Unauthorized\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nWWW-Authenticate: Digest realm=\"carrier.example\", nonce=\"[pid]b[call_number]\", algorithm=MD5, qop=\"auth\"\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps.push(format!(
            "<recv request=\"BYE\" timeout=\"5000\"><action><verifyauth assign_to=\"byeauth\" username=\"{user}\" password=\"{password}\"/></action></recv>"
        ));
        self.steps
            .push("<nop test=\"byeauth\" next=\"byeok\"/>".into());
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 403 Bad Credentials\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self.steps
            .push("<recv request=\"NEVER\" timeout=\"1000\"/>".into());
        self.steps.push("<label id=\"byeok\"/>".into());
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self
    }

    /// Nothing arrives for `ms`: no BYE, no CANCEL, no re-INVITE (any
    /// request fails the scenario). What a phone whose server was killed
    /// sees; it ends the scenario without hanging up.
    pub fn silence(mut self, ms: u64) -> AgentPhone {
        let label = format!("quiet{}", self.steps.len());
        self.steps.push(format!(
            r#"<recv request="NEVER" timeout="{ms}" ontimeout="{label}"/>"#
        ));
        // A jump to a label that ends the scenario fails the call: a step follows.
        self.steps.push(format!(r#"<label id="{label}"/>"#));
        self.steps.push("<nop/>".into());
        self
    }

    /// Pick up (one 200 with SDP, media at `rtp_port`) a call whose server
    /// is gone, and expect no ACK within `ms`: an ACK fails the scenario.
    pub fn answer_unacked(mut self, rtp_port: u16, ms: u64) -> AgentPhone {
        self.steps.push(Self::reply(
            200,
            "Content-Type: application/sdp\n",
            &Self::sdp(rtp_port),
        ));
        let label = format!("noack{}", self.steps.len());
        self.steps.push(format!(
            r#"<recv request="ACK" timeout="{ms}" ontimeout="{label}"/>"#
        ));
        // Only reached when an ACK came: fail.
        self.steps
            .push(r#"<recv request="NEVER" timeout="1"/>"#.into());
        // A jump to a label that ends the scenario fails the call: a step follows.
        self.steps.push(format!(r#"<label id="{label}"/>"#));
        self.steps.push("<nop/>".into());
        self
    }

    /// Expect ringback's BYE and answer 200.
    pub fn expect_bye(mut self, timeout_ms: u64) -> AgentPhone {
        self.steps
            .push(format!("<recv request=\"BYE\" timeout=\"{timeout_ms}\"/>"));
        self.steps.push(
            "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
                .into(),
        );
        self
    }

    /// The XML.
    pub fn xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"agent phone\">\n{}\n</scenario>\n",
            self.steps_with_invite_headers().join("\n")
        )
    }
}

impl Uac {
    /// Play SIPp's G.711 A-law sample (a few seconds of speech) to ringback.
    pub fn play_alaw_sample(mut self) -> Uac {
        let pcap = pcap_dir().join("g711a.pcap");
        self.steps.push(format!(
            r#"<nop><action><exec play_pcap_audio="{}"/></action></nop>"#,
            pcap.display()
        ));
        self
    }
}
