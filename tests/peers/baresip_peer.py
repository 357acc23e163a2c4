#!/usr/bin/env python3
"""A scripted baresip (Debian ``baresip-core`` 1.0) for ringback's interop tests.

Install: ``apt-get install baresip-core`` (the binary and its modules in
``/usr/lib/baresip/modules``). Only the standard library and ``audio.py``
(next to this file) are used.

One process plays one role. It writes a private baresip configuration
(``config`` and ``accounts`` in ``--dir``), starts ``baresip -f DIR`` headless
(no audio device: the audio source is a WAV file through ``aufile``, what the
phone hears is recorded by the ``sndfile`` filter), drives it through
``ctrl_tcp`` (netstring JSON commands: ``dial``, ``accept``, ``sndcode``,
``hangup``, ``quit``) and prints one JSON object per line on stdout:

  caller    dial ``--uri``; send DTMF; play a tone; record; hang up or wait
  agent     REGISTER with digest to ``--registrar``; answer incoming calls
  customer  no registration; listen on ``--port``; answer; press DTMF; record

Events (``"event"`` key, with ``"t"``: seconds since start): ``started``,
``registered`` / ``reg_failed``, ``incoming`` (the INVITE's request line and
headers taken from baresip's SIP trace, and ``x_ringback``: its
``X-Ringback-*`` headers), ``ringing``, ``progress``, ``answering``,
``established``, ``rtp``, ``dtmf`` (received), ``dtmf_sent``, ``tone``
(realtime: a ``--detect`` tone dominated for ``--min-tone-secs``),
``hangup`` (this side sent the BYE/CANCEL), ``closed`` (the call ended, with
baresip's reason), ``tone_report`` (the whole recording analysed with
``audio.tone_report`` after the call), ``error``, ``timeout``, ``done``.

SIP over TLS (``--transport tls``): the account's URI carries
``;transport=tls``, so the agent registers (and stays connected) over TLS
and the caller dials over TLS; neither needs a TLS listener of its own
(ringback answers on the phone's connection). ``--ca FILE`` becomes
baresip's ``sip_cafile``. Beware: baresip 1.0 (libre 1.1) loads that CA but
never verifies the server's certificate (upstream issue baresip#1122;
``sip_verify_server`` came with baresip 1.1; the script sets it too, for a
later baresip), so with baresip 1.0 ``--ca`` does not make a handshake with
an unknown certificate fail.

SRTP with SDES keys (``--srtp optional|mandatory``): ``srtp.so`` is loaded
and the account gets ``;mediaenc=srtp`` (best effort: ``RTP/AVP`` with
``a=crypto``) or ``;mediaenc=srtp-mand`` (``RTP/SAVP``, nothing plain
accepted). Extra events: ``secure`` (baresip's ``CALL_MENC``: the stream
runs SRTP, with the suite) and ``trace`` (every SIP message of the call so
far, from baresip's SIP trace: its transport, addresses, first line, CSeq,
and for SDP bodies the ``m=`` lines and ``a=crypto`` tags and suites, keys
left out), reported when the call is established or ends without being
established.

Timings given to ``--dtmf`` and ``--hangup-after`` are seconds after the
call is established. Everything is bounded by ``--timeout``; baresip is
killed by its PID at the end whatever happens.

Exit codes: 0 finished, 1 registration failed, 2 usage / setup error,
3 hard timeout, 4 the call failed (closed before it was established).
"""

import argparse
import glob
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import audio  # noqa: E402

T0 = time.monotonic()
MODULES = "/usr/lib/baresip/modules"


def now():
    return time.monotonic() - T0


def emit(event, **kw):
    rec = {"event": event, "t": round(now(), 3)}
    rec.update(kw)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ setup ---

def write_config(a, snd_dir, source_wav):
    """baresip's ``config``: only the modules we need, no audio device."""
    lines = [
        "poll_method\t\tepoll",
        "sip_listen\t\t127.0.0.1:%d" % a.port,
        "net_interface\t\t127.0.0.1",
        "rtp_ports\t\t%d-%d" % (a.rtp_port, a.rtp_port + 1),
        "rtp_timeout\t\t0",
        "module_path\t\t%s" % a.modules,
        "module\t\t\tg711.so",
        "module\t\t\taufile.so",
        "module\t\t\tsndfile.so",
        "module_app\t\taccount.so",
        "module_app\t\tmenu.so",
        "module_app\t\tctrl_tcp.so",
        "audio_source\t\taufile,%s" % source_wav,
        # Nothing plays: aubridge is a device without a peer. What the
        # phone hears is what sndfile records (after decoding).
        "audio_player\t\taubridge,nowhere",
        "audio_alert\t\taubridge,nowhere",
        "snd_path\t\t%s" % snd_dir,
        "ctrl_tcp_listen\t\t127.0.0.1:%d" % a.ctrl_port,
        "statmode_default\toff",
        "ringback_disabled\tyes",
        "redial_attempts\t\t0",
    ]
    if a.srtp != "off":
        lines.append("module\t\t\tsrtp.so")
    if a.ca:
        # baresip 1.0 loads the CA into its TLS context but verifies
        # nothing; sip_verify_server (baresip 1.1+, ignored by 1.0) makes a
        # later baresip verify ringback's certificate with it.
        lines.append("sip_cafile\t\t%s" % a.ca)
        lines.append("sip_verify_server\tyes")
    with open(os.path.join(a.dir, "config"), "w") as f:
        f.write("\n".join(lines) + "\n")


MEDIAENC = {"off": "", "optional": ";mediaenc=srtp", "mandatory": ";mediaenc=srtp-mand"}


def account_line(a):
    """The one line of ``accounts`` for this role (baresip 1.0 syntax)."""
    tp = ";transport=%s" % a.transport if a.transport in ("tcp", "tls") else ""
    menc = MEDIAENC[a.srtp]
    if a.role == "agent":
        # The AOR's host is the registrar; transport=tcp (tls) in the URI
        # makes baresip register (and stay connected) over TCP (TLS).
        return ("<sip:%s@%s%s>;auth_pass=%s;regint=%d;answermode=manual%s"
                % (a.user, a.registrar, tp, a.password, a.regint, menc))
    user = a.user or ("+15550123" if a.role == "caller" else "customer")
    return ("<sip:%s@127.0.0.1:%d%s>;regint=0;answermode=manual%s"
            % (user, a.port, tp, menc))


# --------------------------------------------------------------- ctrl_tcp ---

class Ctrl:
    """ctrl_tcp: netstring-framed JSON both ways."""

    def __init__(self, port, deadline, alive):
        last = None
        while time.monotonic() < deadline and alive():
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError as e:
                last = e
                time.sleep(0.05)
        else:
            raise OSError("ctrl_tcp on port %d never accepted: %s" % (port, last))
        self.sock.setblocking(False)
        self.buf = b""
        self.token = 0

    def send(self, command, params=None):
        self.token += 1
        msg = {"command": command, "token": str(self.token)}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg).encode()
        data = str(len(body)).encode() + b":" + body + b","
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def poll(self, timeout):
        """Messages that arrived within ``timeout`` seconds."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if r:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                chunk = None
            if chunk == b"":
                raise EOFError("ctrl_tcp connection closed")
            if chunk:
                self.buf += chunk
        out = []
        while True:
            colon = self.buf.find(b":")
            if colon <= 0 or not self.buf[:colon].isdigit():
                if colon == 0 or (colon > 0 and not self.buf[:colon].isdigit()):
                    # Resynchronise on garbage (never seen, but do not spin).
                    self.buf = self.buf[1:]
                    continue
                break
            n = int(self.buf[:colon])
            if len(self.buf) < colon + 1 + n + 1:
                break
            body = self.buf[colon + 1:colon + 1 + n]
            self.buf = self.buf[colon + 1 + n + 1:]
            try:
                out.append(json.loads(body.decode("utf-8", "replace")))
            except ValueError:
                pass
        return out


# ------------------------------------------------------------ SIP trace ---

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def find_request(log_path, method, call_id):
    """The last ``method`` request with this Call-ID in baresip's SIP trace
    (``-s``): (request line, [[name, value], ...]) or None."""
    try:
        with open(log_path, "r", errors="replace") as f:
            text = ANSI.sub("", f.read())
    except OSError:
        return None
    lines = text.replace("\r\n", "\n").split("\n")
    found = None
    i = 0
    while i < len(lines):
        if lines[i].startswith(method + " ") and "SIP/2.0" in lines[i]:
            req = lines[i]
            headers = []
            j = i + 1
            while j < len(lines) and lines[j].strip() != "":
                line = lines[j]
                if line[:1] in (" ", "\t") and headers:
                    headers[-1][1] += " " + line.strip()
                elif ":" in line:
                    k, v = line.split(":", 1)
                    headers.append([k.strip(), v.strip()])
                j += 1
            cid = next((v for k, v in headers if k.lower() in ("call-id", "i")), None)
            if call_id is None or cid == call_id:
                found = (req, headers)
            i = j
        else:
            i += 1
    return found


TRACE_HEAD = re.compile(r"^(UDP|TCP|TLS|WS|WSS) (\S+) -> (\S+)$")


def sip_messages(log_path, call_id):
    """Every SIP message of baresip's trace (``-s``) with this Call-ID, in
    order: {transport, src, dst, start (first line), cseq, media (the
    ``m=`` lines), crypto (``a=crypto`` tag and suite; keys left out)}.
    The trace prints ``PROTO SRC -> DST`` and then the message, every line
    of which ends with CR."""
    try:
        with open(log_path, "r", errors="replace", newline="") as f:
            text = ANSI.sub("", f.read())
    except OSError:
        return []
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = TRACE_HEAD.match(lines[i].rstrip("\r"))
        if not m:
            i += 1
            continue
        msg = []
        j = i + 1
        while j < len(lines) and lines[j].endswith("\r"):
            msg.append(lines[j][:-1])
            j += 1
        i = j
        if not msg:
            continue
        headers = {}
        body = []
        in_body = False
        for line in msg[1:]:
            if in_body:
                body.append(line)
            elif line == "":
                in_body = True
            elif ":" in line:
                k, v = line.split(":", 1)
                headers.setdefault(k.strip().lower(), v.strip())
        cid = headers.get("call-id") or headers.get("i")
        if call_id is not None and cid != call_id:
            continue
        out.append({
            "transport": m.group(1),
            "src": m.group(2),
            "dst": m.group(3),
            "start": msg[0],
            "cseq": headers.get("cseq", ""),
            "content_type": headers.get("content-type") or headers.get("c") or "",
            "media": [b for b in body if b.startswith("m=")],
            "crypto": [" ".join(b[len("a=crypto:"):].split()[:2])
                       for b in body if b.startswith("a=crypto:")],
        })
    return out


# -------------------------------------------------------- realtime audio ---

class Listener:
    """Follows the recording sndfile writes during a call and reports when
    a tone has dominated for long enough (analysed in 20 ms blocks with
    ``audio.tone_report`` on the part that is new since the last look)."""

    BLOCK_BYTES = 320  # 20 ms of 16-bit mono at 8 kHz

    def __init__(self, path, freqs):
        self.path = path
        self.freqs = freqs
        self.secs = {f: 0.0 for f in freqs}
        self.offset = None
        self.rate = 8000
        self.heard_audio = False

    def _data_offset(self, data):
        pos = 12
        while pos + 8 <= len(data):
            cid = data[pos:pos + 4]
            size = int.from_bytes(data[pos + 4:pos + 8], "little")
            if cid == b"fmt ":
                self.rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            if cid == b"data":
                return pos + 8
            pos += 8 + size + (size & 1)
        return None

    def poll(self, seg_path):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return []
        if self.offset is None:
            self.offset = self._data_offset(data)
            if self.offset is None:
                return []
        block = max(2, int(self.rate * 0.020) * 2)
        avail = (len(data) - self.offset) // block * block
        if avail < block * 10:  # look at 200 ms at a time at least
            return []
        pcm = data[self.offset:self.offset + avail]
        self.offset += avail
        with wave.open(seg_path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(pcm)
        out = []
        for f in self.freqs:
            r = audio.tone_report(seg_path, f)
            if r["voiced_blocks"]:
                self.heard_audio = True
            self.secs[f] += r["secs"]
            out.append((f, self.secs[f]))
        if not self.freqs:
            r = audio.tone_report(seg_path, 1000.0)
            if r["voiced_blocks"]:
                self.heard_audio = True
        return out


# ------------------------------------------------------------------- main ---

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["caller", "agent", "customer"])
    ap.add_argument("--port", type=int, required=True,
                    help="SIP port (UDP and TCP) on 127.0.0.1")
    ap.add_argument("--ctrl-port", type=int,
                    help="ctrl_tcp port (TCP; default: port+2, as baresip itself "
                         "listens for SIP over TLS on TCP port+1)")
    ap.add_argument("--rtp-port", type=int,
                    help="RTP port, RTCP one above (default: port+2)")
    ap.add_argument("--dir", help="working directory (default: a new temporary one)")
    ap.add_argument("--baresip", default="baresip", help="the baresip binary")
    ap.add_argument("--modules", default=MODULES, help="baresip's module directory")
    ap.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp",
                    help="tls: the account URI gets ;transport=tls (no TLS "
                         "listener of ours is needed: ringback answers on our "
                         "connection)")
    ap.add_argument("--ca", help="tls: CA file for baresip's sip_cafile (baresip "
                                 "1.0 loads it but does not verify the server)")
    ap.add_argument("--srtp", choices=["off", "optional", "mandatory"], default="off",
                    help="SDES-SRTP: optional = mediaenc=srtp (RTP/AVP with "
                         "a=crypto), mandatory = mediaenc=srtp-mand (RTP/SAVP)")
    ap.add_argument("--timeout", type=float, default=30.0, help="hard limit (s)")
    # caller
    ap.add_argument("--uri", help="caller: the URI to dial")
    # agent
    ap.add_argument("--registrar", help="agent: registrar host:port")
    ap.add_argument("--user", help="agent: user name; customer/caller: AOR user")
    ap.add_argument("--password", help="agent: digest password")
    ap.add_argument("--regint", type=int, default=300,
                    help="agent: registration interval asked for (s)")
    ap.add_argument("--register-only", action="store_true",
                    help="agent: exit once registered (or failed)")
    ap.add_argument("--keep-registering", action="store_true",
                    help="agent: a failed registration is reported, not fatal "
                         "(baresip retries on its own)")
    ap.add_argument("--calls", type=int, default=1,
                    help="agent/customer: calls to take before exiting")
    # call behaviour
    ap.add_argument("--answer-after", type=float, default=0.5,
                    help="agent/customer: ring this long, then answer (s)")
    ap.add_argument("--dtmf", default="",
                    help="keys to send, KEY@SECS[,KEY@SECS...] after establishment")
    ap.add_argument("--play", type=float, help="tone to send (Hz); silence without it")
    ap.add_argument("--detect", type=float, action="append", default=[],
                    help="tone to listen for (Hz; repeatable)")
    ap.add_argument("--min-tone-secs", type=float, default=0.5)
    ap.add_argument("--hangup-after", type=float,
                    help="hang up this long after establishment (s)")
    ap.add_argument("--hangup-on-tone", type=float,
                    help="hang up once this tone was heard (plus --hangup-delay)")
    ap.add_argument("--hangup-delay", type=float, default=0.0)
    a = ap.parse_args(argv)
    a.ctrl_port = a.ctrl_port or a.port + 2
    a.rtp_port = a.rtp_port or a.port + 2
    if a.role == "caller" and not a.uri:
        ap.error("caller needs --uri")
    if a.role == "agent" and not (a.registrar and a.user and a.password):
        ap.error("agent needs --registrar, --user and --password")
    if a.ca and not os.path.isfile(a.ca):
        ap.error("--ca %s: no such file" % a.ca)
    a.dtmf_plan = []
    for item in filter(None, a.dtmf.split(",")):
        key, _, at = item.partition("@")
        a.dtmf_plan.append((float(at or 0), key))
    a.dtmf_plan.sort()
    if a.hangup_on_tone is not None and a.hangup_on_tone not in a.detect:
        a.detect.append(a.hangup_on_tone)
    return a


class Peer:
    def __init__(self, a):
        self.a = a
        self.proc = None
        self.ctrl = None
        self.exit_code = 0
        self.calls_done = 0
        self.call = None  # state of the current call

    # -- process ----------------------------------------------------------

    def start(self):
        a = self.a
        if shutil.which(a.baresip) is None:
            emit("error", error="%s not found: apt-get install baresip-core" % a.baresip)
            return False
        if not os.path.isdir(a.modules):
            emit("error", error="no baresip modules in %s" % a.modules)
            return False
        if a.srtp != "off" and not os.path.isfile(os.path.join(a.modules, "srtp.so")):
            emit("error", error="no srtp.so in %s" % a.modules)
            return False
        os.makedirs(a.dir, exist_ok=True)
        self.snd_dir = os.path.join(a.dir, "recordings")
        os.makedirs(self.snd_dir, exist_ok=True)
        source = os.path.join(a.dir, "source.wav")
        # Longer than the whole run: aufile stops at the end of its file.
        secs = a.timeout + 5
        if a.play:
            audio.write_tone(source, a.play, secs)
        else:
            audio.write_tone(source, 1000.0, secs, amplitude=0.0)
        write_config(a, self.snd_dir, source)
        with open(os.path.join(a.dir, "accounts"), "w") as f:
            # The agent's account is added over ctrl_tcp once we listen
            # (`uanew`): its REGISTER_OK would otherwise come before that.
            if a.role != "agent":
                f.write(account_line(a) + "\n")
        self.log_path = os.path.join(a.dir, "baresip.log")
        self.seg_path = os.path.join(a.dir, "segment.wav")
        # -s: SIP trace; -t: baresip quits on its own even if this script
        # is killed before it can stop it.
        cmd = [a.baresip, "-f", a.dir, "-s", "-v", "-t", str(int(a.timeout) + 10)]
        stdbuf = shutil.which("stdbuf")
        if stdbuf:
            # The SIP trace goes to stdout: unbuffered, so that an INVITE is
            # in the log by the time its call is announced on ctrl_tcp.
            cmd = [stdbuf, "-o0", "-e0"] + cmd
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=a.dir,
                                     start_new_session=True)
        log.close()
        # baresip prints this once every module is loaded (or exits).
        until = time.monotonic() + 5
        while time.monotonic() < until and self.proc.poll() is None:
            if "baresip is ready" in self.log_text():
                break
            time.sleep(0.05)
        if self.proc.poll() is not None:
            emit("error", error="baresip exited with %s" % self.proc.returncode,
                 log=self.log_tail())
            return False
        if "ctrl_tcp: TCP socket listening" not in self.log_text():
            # E.g. its port was taken: the module fails, baresip carries on.
            emit("error", error="ctrl_tcp is not listening", log=self.log_tail())
            return False
        try:
            self.ctrl = Ctrl(a.ctrl_port, time.monotonic() + 5,
                             lambda: self.proc.poll() is None)
        except OSError as e:
            emit("error", error=str(e), log=self.log_tail())
            return False
        emit("started", pid=self.proc.pid, port=a.port, ctrl_port=a.ctrl_port,
             rtp_port=a.rtp_port, transport=a.transport, account=account_line(a),
             srtp=a.srtp, ca=a.ca, dir=a.dir)
        return True

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return ANSI.sub("", f.read())
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None and self.ctrl is not None:
            try:
                self.ctrl.send("quit")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass

    # -- calls --------------------------------------------------------------

    def new_call(self, cid, direction):
        self.call = {
            "id": cid,
            "direction": direction,
            "established_at": None,
            "answer_at": None,
            "dtmf": list(self.a.dtmf_plan),
            "hangup_at": None,
            "listener": None,
            "recording": None,
            "announced": set(),
            "closed": False,
            "hung_up": False,
            "started_files": set(glob.glob(os.path.join(self.snd_dir, "*-dec.wav"))),
        }

    def on_event(self, ev):
        a = self.a
        typ = ev.get("type", "")
        cid = ev.get("id")
        if typ == "REGISTER_OK":
            emit("registered", aor=ev.get("accountaor"), param=ev.get("param"))
            if a.register_only:
                return "done"
        elif typ == "REGISTER_FAIL":
            emit("reg_failed", aor=ev.get("accountaor"), reason=ev.get("param"),
                 log=self.log_tail(40))
            if not a.keep_registering:
                self.exit_code = 1
                return "done"
        elif typ == "CALL_INCOMING":
            if self.call is not None and not self.call["closed"]:
                emit("error", error="a second call while one is in progress", id=cid)
                return None
            self.new_call(cid, "incoming")
            found = find_request(self.log_path, "INVITE", cid)
            req, headers = found if found else ("", [])
            x = {k: v for k, v in headers if k.lower().startswith("x-ringback-")}
            emit("incoming", id=cid, peeruri=ev.get("peeruri"), param=ev.get("param"),
                 request_line=req, headers=headers, x_ringback=x)
            self.call["answer_at"] = now() + a.answer_after
        elif typ == "CALL_RINGING":
            emit("ringing", id=cid)
        elif typ == "CALL_PROGRESS":
            emit("progress", id=cid)
        elif typ == "CALL_ESTABLISHED":
            if self.call is None:
                self.new_call(cid, "outgoing")
            self.call["id"] = cid
            self.call["established_at"] = now()
            if a.hangup_after is not None:
                self.call["hangup_at"] = now() + a.hangup_after
            emit("established", id=cid, peeruri=ev.get("peeruri"))
            self.report_trace(cid)
        elif typ == "CALL_RTPESTAB":
            emit("rtp", id=cid, media=ev.get("param"))
        elif typ == "CALL_MENC":
            emit("secure", id=cid, param=ev.get("param"))
        elif typ == "CALL_DTMF_START":
            emit("dtmf", id=cid, key=ev.get("param"))
        elif typ == "CALL_CLOSED":
            return self.on_closed(cid, ev.get("param"))
        return None

    def on_closed(self, cid, reason):
        c = self.call
        emit("closed", id=cid, reason=reason, by_us=bool(c and c["hung_up"]))
        if c is None or c["established_at"] is None:
            self.report_trace(cid)
            self.exit_code = self.exit_code or 4
            self.calls_done += 1
            self.call = None
            return "done" if self.a.role == "caller" or self.calls_done >= self.a.calls else None
        c["closed"] = True
        # sndfile closes its files when the audio stream is destroyed.
        time.sleep(0.5)
        self.find_recording()
        self.poll_audio()
        rec = c["recording"]
        for f in self.a.detect:
            if rec is None:
                emit("tone_report", freq=f, detected=False, error="nothing recorded")
                continue
            try:
                r = audio.tone_report(rec, f)
            except (OSError, ValueError) as e:
                emit("tone_report", freq=f, detected=False, error=str(e), file=rec)
                continue
            r["detected"] = r["secs"] >= self.a.min_tone_secs
            r["min_secs"] = self.a.min_tone_secs
            emit("tone_report", **r)
        self.calls_done += 1
        self.call = None
        if self.a.role == "caller" or self.calls_done >= self.a.calls:
            return "done"
        return None

    def report_trace(self, cid):
        """The SIP messages of call ``cid`` so far (see ``sip_messages``).
        Nothing without a Call-ID (baresip can refuse an incoming call, e.g.
        an SRTP-only offer without srtp.so, before it announces it)."""
        if cid:
            emit("trace", id=cid, messages=sip_messages(self.log_path, cid))

    def find_recording(self):
        c = self.call
        if c is None or c["recording"] is not None:
            return
        files = set(glob.glob(os.path.join(self.snd_dir, "*-dec.wav"))) - c["started_files"]
        if files:
            c["recording"] = max(files, key=os.path.getmtime)
            c["listener"] = Listener(c["recording"], self.a.detect)

    def poll_audio(self):
        c = self.call
        if c is None or c["listener"] is None:
            return
        lst = c["listener"]
        had_audio = lst.heard_audio
        for f, secs in lst.poll(self.seg_path):
            if secs >= self.a.min_tone_secs and f not in c["announced"]:
                c["announced"].add(f)
                emit("tone", id=c["id"], freq=f, secs=round(secs, 3))
                if (self.a.hangup_on_tone == f and c["hangup_at"] is None
                        and not c["closed"]):
                    c["hangup_at"] = now() + self.a.hangup_delay
        if lst.heard_audio and not had_audio:
            emit("audio_heard", id=c["id"])

    def tick(self):
        c = self.call
        if c is None or c["closed"]:
            return
        t = now()
        if c["answer_at"] is not None and t >= c["answer_at"] and c["established_at"] is None:
            c["answer_at"] = None
            emit("answering", id=c["id"])
            self.ctrl.send("accept")
        if c["established_at"] is None:
            return
        self.find_recording()
        self.poll_audio()
        since = t - c["established_at"]
        while c["dtmf"] and c["dtmf"][0][0] <= since:
            _, key = c["dtmf"].pop(0)
            self.ctrl.send("sndcode", key)
            emit("dtmf_sent", id=c["id"], key=key)
        if c["hangup_at"] is not None and t >= c["hangup_at"] and not c["hung_up"]:
            c["hung_up"] = True
            emit("hangup", id=c["id"])
            self.ctrl.send("hangup")

    def run(self):
        a = self.a
        deadline = T0 + a.timeout
        if a.role == "agent":
            self.ctrl.send("uanew", account_line(a))
        if a.role == "caller":
            self.new_call(None, "outgoing")
            uri = a.uri
            if a.transport == "tcp" and "transport=" not in uri:
                uri += ";transport=tcp"
            if a.transport == "tls":
                # baresip 1.0 appends the account URI's parameters (here
                # ;transport=tls) to what it dials: not twice.
                uri = re.sub(r";transport=[^;>?]*", "", uri)
            self.ctrl.send("dial", uri)
            emit("dialing", uri=uri)
        last_audio = 0.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                emit("timeout", log=self.log_tail(40))
                self.exit_code = 3
                return
            if self.proc.poll() is not None:
                emit("error", error="baresip exited with %s" % self.proc.returncode,
                     log=self.log_tail(40))
                self.exit_code = self.exit_code or 2
                return
            try:
                msgs = self.ctrl.poll(min(0.05, left))
            except (EOFError, OSError) as e:
                emit("error", error="ctrl_tcp: %s" % e, log=self.log_tail(40))
                self.exit_code = self.exit_code or 2
                return
            for m in msgs:
                if m.get("event"):
                    if self.on_event(m) == "done":
                        return
                elif m.get("response") and not m.get("ok"):
                    emit("error", error="command refused", response=m)
            if time.monotonic() - last_audio >= 0.25:
                last_audio = time.monotonic()
                self.tick()
            else:
                c = self.call
                if c is not None and c["answer_at"] is not None:
                    self.tick()


def main(argv):
    a = parse_args(argv)
    own_dir = a.dir is None
    if own_dir:
        a.dir = tempfile.mkdtemp(prefix="baresip-peer-")
    peer = Peer(a)

    def on_signal(signum, _frame):
        peer.stop()
        emit("error", error="terminated by signal %d" % signum)
        sys.exit(3)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not peer.start():
            peer.stop()
            return 2
        peer.run()
    except Exception as e:  # noqa: BLE001 - reported to the test
        emit("error", error="%s: %s" % (type(e).__name__, e))
        peer.exit_code = peer.exit_code or 2
    finally:
        peer.stop()
    emit("done", code=peer.exit_code)
    if own_dir:
        shutil.rmtree(a.dir, ignore_errors=True)
    return peer.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
