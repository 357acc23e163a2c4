#!/usr/bin/env python3
"""Capture RTP on the loopback interface and look into it, for ringback's
SRTP interop tests (tests/srtp_interop.rs).

It opens an ``AF_PACKET`` raw socket on ``--iface`` (default ``lo``; the
tests run as root), keeps the IPv4/UDP packets of which either port is one
of ``--port`` / ``--ports A-B`` for ``--duration`` seconds, and reports per
flow (source address, destination address):

* how many packets, how many of them look like RTP (version 2, not an
  RTCP packet type, at least a 12-byte header), their payload types and
  SSRCs;
* for each ``--tone FREQ``: whether the payloads of the flow's RTP packets
  of payload type ``--pt`` (default 0), decoded as PCMU (G.711 mu-law),
  carry that tone -- the same Goertzel detector the PJSIP peers use on
  what they hear (``audio.tone_report``, at least ``--min-tone-secs``).
  Only the first ``--frame-bytes`` bytes of each payload are decoded (160:
  one 20 ms PCMU frame), so an SRTP authentication tag after the payload
  is not counted as audio and a plain and a secure packet are judged on
  exactly the bytes where PCMU samples would be;
* with ``--dump-dst-port P``: the UDP payloads sent to port P, in hex, in
  arrival order (at most ``--dump-max``), for tests that replay or tamper
  with genuine packets.

Output: one JSON object per line on stdout: ``started`` once the socket is
open (so a test knows the capture is running), then ``capture`` with the
results when the time is up, then ``done``. If the raw socket cannot be
opened (no CAP_NET_RAW, no such interface) it prints ``error`` and exits
with code 2: a test that needs the capture must fail, not skip.

Loopback shows every packet twice (once leaving, once arriving); only the
arriving copy is kept.

Only the standard library (and ``audio.py`` beside this file) is used.
"""

import argparse
import json
import os
import socket
import struct
import sys
import tempfile
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import audio  # noqa: E402

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def emit(event, **kw):
    rec = {"event": event, "t": round(now(), 3)}
    rec.update(kw)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ G.711 ---

def _ulaw_to_linear(u):
    """One mu-law byte to a 16-bit linear sample (ITU-T G.711)."""
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = ((mantissa << 3) + 0x84) << exponent
    sample -= 0x84
    return -sample if sign else sample


ULAW = [_ulaw_to_linear(b) for b in range(256)]


# ---------------------------------------------------------------- parsing ---

def udp_of(frame):
    """(src ip, src port, dst ip, dst port, payload) of an Ethernet-framed
    IPv4/UDP packet (loopback uses a zeroed Ethernet header), else None."""
    if len(frame) < 14 + 20 + 8:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype != 0x0800:
        return None
    ip = frame[14:]
    if ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 17 or len(ip) < ihl + 8:
        return None
    frag = struct.unpack("!H", ip[6:8])[0]
    if frag & 0x1FFF:
        return None  # a later fragment: no UDP header
    total = struct.unpack("!H", ip[2:4])[0]
    src = socket.inet_ntoa(ip[12:16])
    dst = socket.inet_ntoa(ip[16:20])
    udp = ip[ihl:total] if total >= ihl + 8 else ip[ihl:]
    sport, dport, ulen = struct.unpack("!HHH", udp[:6])
    payload = udp[8:ulen] if ulen >= 8 else udp[8:]
    return src, sport, dst, dport, payload


def rtp_header_len(pkt):
    """Length of the RTP header (with CSRCs and extension) if ``pkt`` looks
    like RTP: version 2, not an RTCP packet type, header within the packet."""
    if len(pkt) < 12 or pkt[0] >> 6 != 2:
        return None
    if 192 <= pkt[1] <= 223:
        return None  # RTCP (SR, RR, SDES, BYE, APP, ...), maybe multiplexed
    n = 12 + 4 * (pkt[0] & 0x0F)
    if pkt[0] & 0x10:
        if len(pkt) < n + 4:
            return None
        n += 4 + 4 * struct.unpack("!H", pkt[n + 2:n + 4])[0]
    return n if n <= len(pkt) else None


# ------------------------------------------------------------------ flows ---

class Flow:
    def __init__(self, src, dst):
        self.src = src
        self.dst = dst
        self.packets = 0
        self.rtp = 0
        self.pts = {}
        self.ssrcs = []
        self.samples = []  # decoded PCMU of the audio payload type
        self.audio_packets = 0
        self.raw = []

    def add(self, pkt, a):
        self.packets += 1
        hlen = rtp_header_len(pkt)
        if hlen is None:
            return
        self.rtp += 1
        pt = pkt[1] & 0x7F
        self.pts[str(pt)] = self.pts.get(str(pt), 0) + 1
        ssrc = struct.unpack("!I", pkt[8:12])[0]
        if ssrc not in self.ssrcs and len(self.ssrcs) < 16:
            self.ssrcs.append(ssrc)
        if pt == a.pt:
            self.audio_packets += 1
            frame = pkt[hlen:hlen + a.frame_bytes]
            self.samples.extend(ULAW[b] for b in frame)

    def report(self, a, workdir, index):
        rep = {
            "src": "%s:%d" % self.src,
            "dst": "%s:%d" % self.dst,
            "packets": self.packets,
            "rtp": self.rtp,
            "payload_types": self.pts,
            "ssrcs": self.ssrcs,
            "audio_packets": self.audio_packets,
            "decoded_secs": round(len(self.samples) / 8000.0, 3),
            "tones": {},
        }
        if self.samples and a.tone:
            # The peers' own detector reads WAV files: write the decoded
            # audio as one (kept in --dir for a look after a failure).
            path = os.path.join(workdir, "flow-%d-%d-to-%d.wav"
                                % (index, self.src[1], self.dst[1]))
            with wave.open(path, "wb") as wf:
                wf.setnchannels(1)
                wf.setsampwidth(2)
                wf.setframerate(8000)
                wf.writeframes(struct.pack("<%dh" % len(self.samples), *self.samples))
            rep["wav"] = path
            for f in a.tone:
                r = audio.tone_report(path, f)
                rep["tones"][str(f)] = {
                    "detected": r["secs"] >= a.min_tone_secs,
                    "secs": r["secs"],
                    "best_ratio": r["best_ratio"],
                    "voiced_blocks": r["voiced_blocks"],
                    "blocks": r["blocks"],
                }
        else:
            for f in a.tone:
                rep["tones"][str(f)] = {"detected": False, "secs": 0.0,
                                        "best_ratio": 0.0, "voiced_blocks": 0,
                                        "blocks": 0}
        if self.dst[1] in a.dump_dst_port:
            rep["raw"] = self.raw
        return rep


def parse_range(s):
    lo, _, hi = s.partition("-")
    lo, hi = int(lo), int(hi or lo)
    if not (0 < lo <= hi < 65536):
        raise argparse.ArgumentTypeError("bad port range %r" % s)
    return lo, hi


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["capture"])
    ap.add_argument("--iface", default="lo")
    ap.add_argument("--port", type=int, action="append", default=[],
                    help="keep UDP packets from or to this port (repeatable)")
    ap.add_argument("--ports", type=parse_range, action="append", default=[],
                    help="keep UDP packets from or to ports A-B (repeatable)")
    ap.add_argument("--duration", type=float, required=True, help="seconds")
    ap.add_argument("--tone", type=float, action="append", default=[],
                    help="look for this frequency in the PCMU payloads (repeatable)")
    ap.add_argument("--min-tone-secs", type=float, default=0.5)
    ap.add_argument("--pt", type=int, default=0, help="the audio payload type (PCMU: 0)")
    ap.add_argument("--frame-bytes", type=int, default=160,
                    help="payload bytes decoded per packet (one 20 ms PCMU frame)")
    ap.add_argument("--dump-dst-port", type=int, action="append", default=[],
                    help="report the raw UDP payloads sent to this port (hex)")
    ap.add_argument("--dump-max", type=int, default=200)
    ap.add_argument("--dir", help="where to keep the decoded WAV files")
    ap.add_argument("--log", help="a short log of the capture")
    a = ap.parse_args(argv)
    if not a.port and not a.ports:
        ap.error("give --port or --ports")

    ports = set(a.port)
    ranges = list(a.ports)

    def wanted(p):
        return p in ports or any(lo <= p <= hi for lo, hi in ranges)

    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((a.iface, 0))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        except OSError:
            pass
    except (OSError, AttributeError) as e:
        emit("error", error="cannot open an AF_PACKET raw socket on %s (root / "
             "CAP_NET_RAW needed): %s" % (a.iface, e))
        sys.exit(2)

    workdir = a.dir or tempfile.mkdtemp(prefix="rtp-capture-")
    os.makedirs(workdir, exist_ok=True)
    log = open(a.log, "a") if a.log else None
    emit("started", iface=a.iface, ports=sorted(ports),
         ranges=["%d-%d" % r for r in ranges], duration=a.duration)

    flows = {}
    total = 0
    end = now() + a.duration
    while True:
        left = end - now()
        if left <= 0:
            break
        sock.settimeout(min(left, 0.2))
        try:
            frame, addr = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == PACKET_OUTGOING:
            continue  # loopback: the arriving copy is the one we keep
        u = udp_of(frame)
        if u is None:
            continue
        src, sport, dst, dport, payload = u
        if not (wanted(sport) or wanted(dport)):
            continue
        total += 1
        key = ((src, sport), (dst, dport))
        fl = flows.get(key)
        if fl is None:
            fl = flows[key] = Flow(key[0], key[1])
            if log:
                log.write("%.3f new flow %s:%d -> %s:%d\n" % (now(), src, sport, dst, dport))
        fl.add(payload, a)
        if dport in a.dump_dst_port and len(fl.raw) < a.dump_max:
            fl.raw.append(payload.hex())
    sock.close()

    reports = [fl.report(a, workdir, i) for i, fl in enumerate(flows.values())]
    if log:
        for r in reports:
            log.write("%s -> %s: %d packets, %d RTP, tones %s\n"
                      % (r["src"], r["dst"], r["packets"], r["rtp"], json.dumps(r["tones"])))
        log.close()
    emit("capture", packets=total, rtp_packets=sum(r["rtp"] for r in reports),
         flows=reports)
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
