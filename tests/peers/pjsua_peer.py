#!/usr/bin/env python3
"""A scriptable PJSIP user agent (pjsua2) for ringback's interop tests.

Install: ``pip install pjsua2-python`` (binary wheels of PJSIP's pjsua2).

One process plays one role and prints one JSON object per line on stdout
(nothing else goes to stdout; PJSIP's own log goes to ``--log``):

  caller    call ``--uri``; send DTMF; play a tone; record; hang up or wait
  agent     REGISTER with digest to ``--registrar``; answer incoming calls
  customer  no registration; listen on ``--port``; answer; press DTMF once
            the intro prompt is heard; play a tone; record

Events (``"event"`` key): ``started``, ``registered`` / ``reg_failed``,
``incoming`` (with every header, and ``x_ringback``: the ``X-Ringback-*``
headers), ``call_state``, ``media_active`` (codec, payload types, DTMF PT),
``audio_heard``, ``dtmf_sent``, ``dtmf`` (received), ``tone`` (realtime:
a tone dominated for ``--min-tone-secs``), ``tone_report`` (the whole
recording analysed with ``audio.tone_report`` once the call ended),
``hangup``, ``error``, ``timeout``, ``done``.

Every timing option is in seconds, relative to the call's CONFIRMED state
unless said otherwise.  Everything is bounded by ``--timeout``; an alarm
kills the process if PJSIP's shutdown hangs.

Exit codes: 0 finished, 1 registration failed, 2 usage / setup error,
3 hard timeout.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import audio  # noqa: E402

try:
    import pjsua2 as pj
except ImportError as _e:  # pragma: no cover - reported to the test
    print(json.dumps({"event": "error", "t": 0.0,
                      "error": "pjsua2 is not installed (pip install pjsua2-python): %s" % _e}),
          flush=True)
    sys.exit(2)

T0 = time.monotonic()

# stdout carries only our JSON lines: PJSIP prints a few lines to fd 1
# before its log configuration applies, so fd 1 becomes stderr and the
# events go to a private duplicate of the original stdout.
_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def now():
    return time.monotonic() - T0


def emit(event, **kw):
    rec = {"event": event, "t": round(now(), 3)}
    rec.update(kw)
    _OUT.write(json.dumps(rec) + "\n")
    _OUT.flush()


def parse_headers(msg):
    """Headers of a SIP message as a list of [name, value] (unfolded)."""
    head = msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")[1:]
    out = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1][1] += " " + line.strip()
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            out.append([k.strip(), v.strip()])
    return out


def parse_dtmf_spec(specs):
    """``["1@1.5", "0@3"]`` -> [("1", 1.5), ("0", 3.0)]; bare digits -> @1.0."""
    out = []
    for s in specs or []:
        if "@" in s:
            d, t = s.split("@", 1)
            out.append((d, float(t)))
        else:
            out.append((s, 1.0))
    return out


# ------------------------------------------------------------ recordings ---

class Tracker:
    """Follows a growing recorder WAV and runs Goertzel on each new block.

    Emits ``audio_heard`` once non-silent audio has been heard and ``tone``
    once a watched frequency has dominated for ``min_secs`` in total.
    """

    def __init__(self, peer, call, path, freqs, min_secs, heard_rms=0.01):
        self.peer = peer
        self.call = call
        self.path = path
        self.freqs = [float(f) for f in freqs]
        self.min_secs = min_secs
        self.heard_rms2 = heard_rms * heard_rms
        self.data_off = None
        self.rate = None
        self.width = 2
        self.channels = 1
        self.pos = 0
        self.pending = []
        self.block = None
        self.voiced_secs = 0.0
        self.heard_at = None
        self.hits = {f: 0.0 for f in self.freqs}
        self.reported = set()

    def _header(self):
        try:
            with open(self.path, "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
        if len(head) < 12 or head[:4] != b"RIFF":
            return False
        import struct
        pos = 12
        while pos + 8 <= len(head):
            cid = head[pos:pos + 4]
            size = struct.unpack("<I", head[pos + 4:pos + 8])[0]
            if cid == b"fmt ":
                _tag, ch, rate, _br, _ba, bits = struct.unpack(
                    "<HHIIHH", head[pos + 8:pos + 24])
                self.channels, self.rate, self.width = ch, rate, bits // 8
            elif cid == b"data":
                self.data_off = pos + 8
                self.pos = self.data_off
                break
            pos += 8 + size + (size & 1)
        if self.data_off is None or not self.rate:
            return False
        self.block = max(1, int(round(self.rate * audio.BLOCK_SECS)))
        return True

    def poll(self):
        if self.data_off is None and not self._header():
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                raw = f.read()
        except OSError:
            return
        frame = self.width * self.channels
        raw = raw[:len(raw) - len(raw) % frame]
        if not raw:
            return
        self.pos += len(raw)
        self.pending.extend(audio._decode_pcm(raw, self.width, self.channels))
        n = self.block
        while len(self.pending) >= n:
            blk = self.pending[:n]
            del self.pending[:n]
            self._block(blk)

    def _block(self, blk):
        secs = len(blk) / float(self.rate)
        msq = sum(x * x for x in blk) / len(blk)
        if msq >= self.heard_rms2:
            self.voiced_secs += secs
            if self.heard_at is None:
                self.heard_at = now()
                emit("audio_heard", call=self.call.tag)
        if msq < 0.003 * 0.003:
            return
        for f in self.freqs:
            ratio, _ = audio._block_ratio(blk, f, self.rate)
            if ratio < 0.5:
                continue
            comps = [c for c in audio.TEST_FREQS
                     if abs(c - f) > 60.0 and c < self.rate / 2.0]
            if all(audio._block_ratio(blk, c, self.rate)[0] * 4.0 <= ratio
                   for c in comps):
                self.hits[f] += secs
                if f not in self.reported and self.hits[f] >= self.min_secs:
                    self.reported.add(f)
                    emit("tone", call=self.call.tag, freq=f,
                         secs=round(self.hits[f], 3))
                    self.peer.on_tone(self.call, f)


# ------------------------------------------------------------------ calls ---

class PeerCall(pj.Call):
    def __init__(self, peer, acc, call_id=None, tag="c1"):
        if call_id is None:
            pj.Call.__init__(self, acc)
        else:
            pj.Call.__init__(self, acc, call_id)
        self.peer = peer
        self.tag = tag
        self.confirmed_at = None
        self.disconnected = False
        self.aud = None
        self.player = None
        self.recorder = None
        self.rec_path = None
        self.tracker = None
        self.reported = False
        self.actions = []  # (due monotonic-relative secs, name, fn)

    # -- helpers --------------------------------------------------------
    def at(self, delay, name, fn):
        self.actions.append((now() + delay, name, fn))

    def info(self):
        try:
            return self.getInfo()
        except pj.Error:
            return None

    # -- callbacks ------------------------------------------------------
    def onCallState(self, prm):
        ci = self.info()
        if ci is None:
            return
        emit("call_state", call=self.tag, state=ci.stateText,
             code=ci.lastStatusCode, reason=ci.lastReason,
             call_id=ci.callIdString, remote=ci.remoteUri,
             remote_contact=ci.remoteContact)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = now()
            self.peer.on_confirmed(self)
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.actions = []
            self.peer.on_disconnected(self, ci)

    def onCallMediaState(self, prm):
        ci = self.info()
        if ci is None:
            return
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                emit("media_state", call=self.tag, status=int(mi.status))
                continue
            if self.aud is not None:
                # After a re-INVITE (hold/resume) PJSIP may rebuild the
                # stream: connect the player and recorder to it again.
                try:
                    self.aud = self.getAudioMedia(mi.index)
                    if getattr(self, "player", None) is not None:
                        self.player.startTransmit(self.aud)
                    if getattr(self, "recorder", None) is not None:
                        self.aud.startTransmit(self.recorder)
                    emit("media_reconnected", call=self.tag)
                except pj.Error as e:
                    emit("error", call=self.tag, error="reconnect: %s" % e.info())
                continue
            try:
                self.aud = self.getAudioMedia(mi.index)
            except pj.Error as e:
                emit("error", call=self.tag, error="getAudioMedia: %s" % e.info())
                continue
            details = {}
            try:
                si = self.getStreamInfo(mi.index)
                details = {
                    "codec": si.codecName, "clock_rate": si.codecClockRate,
                    "tx_pt": si.txPt, "rx_pt": si.rxPt,
                    "tx_event_pt": si.audTxEventPt, "rx_event_pt": si.audRxEventPt,
                    "remote_rtp": si.remoteRtpAddress, "proto": si.proto,
                }
            except pj.Error:
                pass
            emit("media_active", call=self.tag, **details)
            self.peer.on_media(self)

    def onDtmfDigit(self, prm):
        emit("dtmf", call=self.tag, digit=prm.digit, method=int(prm.method),
             duration=prm.duration)


# ------------------------------------------------------------------- peer ---

class Peer:
    def __init__(self, a):
        self.a = a
        self.ep = None
        self.acc = None
        self.calls = []
        self.finished_calls = 0
        self.done = False
        self.exit_code = 0
        self.registered = False
        self.workdir = a.dir or tempfile.mkdtemp(prefix="pjsua-peer-")
        os.makedirs(self.workdir, exist_ok=True)
        self.play_path = None
        if a.play_wav:
            self.play_path = a.play_wav
        elif a.play:
            self.play_path = os.path.join(self.workdir, "tone-%d.wav" % int(a.play))
            audio.write_tone(self.play_path, a.play, 10.0, rate=8000,
                             amplitude=a.amplitude)
        self.dtmf = parse_dtmf_spec(a.dtmf)

    # -- setup ----------------------------------------------------------
    def start(self):
        a = self.a
        ep = pj.Endpoint()
        self.ep = ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 8
        cfg.logConfig.level = 5
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.msgLogging = True
        if a.log:
            cfg.logConfig.filename = a.log
        cfg.medConfig.clockRate = a.clock_rate
        cfg.medConfig.sndClockRate = a.clock_rate
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = a.port
        tcfg.boundAddress = a.ip
        tcfg.publicAddress = a.ip
        ttype = {"tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}.get(
            a.transport, pj.PJSIP_TRANSPORT_UDP)
        if a.transport == "tls":
            # Verify ringback's certificate against --ca (a lab CA the test
            # made); without --ca, no verification (like many phones).
            if a.ca:
                tcfg.tlsConfig.CaListFile = a.ca
                tcfg.tlsConfig.verifyServer = True
            else:
                tcfg.tlsConfig.verifyServer = False
            tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            if a.tls_cert:
                tcfg.tlsConfig.certFile = a.tls_cert
                tcfg.tlsConfig.privKeyFile = a.tls_key
        tid = ep.transportCreate(ttype, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        if a.codecs:
            want = [c.lower() for c in a.codecs.split(",")]
            for ci in ep.codecEnum2():
                name = ci.codecId.split("/")[0].lower()
                prio = 0
                if name in want:
                    prio = 255 - want.index(name)
                ep.codecSetPriority(ci.codecId, prio)
        port = ep.transportGetInfo(tid).localName

        acfg = pj.AccountConfig()
        user = a.user or {"caller": "+15550123", "customer": "customer"}.get(a.role, "agent")
        host = "%s:%d" % (a.ip, a.port) if a.port else a.ip
        suffix = {"tcp": ";transport=tcp", "tls": ";transport=tls"}.get(a.transport, "")
        acfg.sipConfig.transportId = tid
        acfg.mediaConfig.transportConfig.port = a.rtp_port
        acfg.mediaConfig.transportConfig.boundAddress = a.ip
        acfg.mediaConfig.transportConfig.publicAddress = a.ip
        acfg.mediaConfig.srtpUse = {
            "disabled": pj.PJMEDIA_SRTP_DISABLED,
            "optional": pj.PJMEDIA_SRTP_OPTIONAL,
            "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
        }[a.srtp]
        acfg.mediaConfig.srtpSecureSignaling = 0
        if a.timer == "off":
            acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
        elif a.timer == "required":
            acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_REQUIRED
        if a.prack == "required":
            acfg.callConfig.prackUse = pj.PJSUA_100REL_MANDATORY
        if a.role == "agent":
            reg = a.registrar
            acfg.idUri = "sip:%s@%s" % (user, reg)
            acfg.regConfig.registrarUri = "sip:%s%s" % (reg, suffix)
            acfg.regConfig.timeoutSec = a.reg_expires
            acfg.regConfig.retryIntervalSec = 0
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", a.realm, user, 0, a.password or ""))
        else:
            acfg.idUri = "sip:%s@%s" % (user, host)
        self.acc = PeerAccount(self)
        self.acc.create(acfg, True)
        emit("started", role=a.role, transport=a.transport, sip=port,
             user=user, version=ep.libVersion().full,
             codecs=[c.codecId for c in ep.codecEnum2() if c.priority > 0],
             workdir=self.workdir)

        if a.role == "caller":
            uri = a.uri
            if a.transport in ("tcp", "tls") and "transport=" not in uri:
                uri += ";transport=" + a.transport
            call = PeerCall(self, self.acc, tag="c1")
            self.calls.append(call)
            op = pj.CallOpParam(True)
            call.makeCall(uri, op)
            emit("calling", uri=uri)

    # -- events from pjsua2 ---------------------------------------------
    def on_reg(self, prm):
        if prm.code // 100 == 2 and prm.expiration > 0:
            if not self.registered:
                self.registered = True
                emit("registered", code=prm.code, reason=prm.reason,
                     expires=prm.expiration)
        elif prm.expiration == 0 and prm.code // 100 == 2:
            emit("unregistered", code=prm.code)
        else:
            emit("reg_failed", code=prm.code, reason=prm.reason)
            if not self.registered:
                self.exit_code = 1
                self.done = True

    def on_incoming(self, prm):
        msg = prm.rdata.wholeMsg
        hdrs = parse_headers(msg)
        x = {}
        for k, v in hdrs:
            if k.lower().startswith("x-ringback-"):
                x[k] = v
        tag = "c%d" % (len(self.calls) + 1)
        call = PeerCall(self, self.acc, prm.callId, tag=tag)
        self.calls.append(call)
        emit("incoming", call=tag, src=prm.rdata.srcAddress,
             request_line=msg.split("\r\n", 1)[0], headers=hdrs, x_ringback=x,
             message=msg)
        op = pj.CallOpParam()
        if self.a.answer_code != 200:
            op.statusCode = self.a.answer_code
            call.answer(op)
            return
        if self.a.ring_delay > 0:
            op.statusCode = 180
            call.answer(op)
            call.at(self.a.ring_delay, "answer", lambda c=call: self.answer(c))
        else:
            self.answer(call)

    def answer(self, call):
        if call.disconnected:
            return
        op = pj.CallOpParam()
        op.statusCode = 200
        try:
            call.answer(op)
            emit("answered", call=call.tag)
        except pj.Error as e:
            emit("error", call=call.tag, error="answer: %s" % e.info())

    def on_media(self, call):
        a = self.a
        # Record everything heard.
        try:
            call.rec_path = os.path.join(self.workdir, "rec-%s.wav" % call.tag)
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(call.rec_path)
            call.aud.startTransmit(rec)
            call.recorder = rec
            call.tracker = Tracker(self, call, call.rec_path,
                                   set(a.detect + a.hangup_on_tone),
                                   a.min_tone_secs)
        except pj.Error as e:
            emit("error", call=call.tag, error="recorder: %s" % e.info())
        if self.play_path:
            def play(c=call):
                if c.disconnected or c.aud is None:
                    return
                try:
                    pl = pj.AudioMediaPlayer()
                    pl.createPlayer(self.play_path, 0)  # loops
                    pl.startTransmit(c.aud)
                    c.player = pl
                    emit("playing", call=c.tag, file=self.play_path)
                except pj.Error as e:
                    emit("error", call=c.tag, error="player: %s" % e.info())
            if a.play_at > 0:
                call.at(a.play_at, "play", play)
            else:
                play()

    def on_confirmed(self, call):
        a = self.a
        for digits, at in self.dtmf:
            if a.dtmf_base == "audio":
                call.pending_dtmf = getattr(call, "pending_dtmf", [])
                call.pending_dtmf.append((digits, at))
            else:
                call.at(at, "dtmf", lambda c=call, d=digits: self.send_dtmf(c, d))
        if a.hangup_after is not None:
            call.at(a.hangup_after, "hangup", lambda c=call: self.hangup(c, "after"))
        if a.hold_at is not None:
            call.at(a.hold_at, "hold", lambda c=call: self.hold(c))
        if a.unhold_at is not None:
            call.at(a.unhold_at, "unhold", lambda c=call: self.unhold(c))

    def hold(self, call):
        """Put the call on hold: a re-INVITE with a=sendonly."""
        if call.disconnected:
            return
        try:
            call.setHold(pj.CallOpParam(True))
            emit("hold_sent", call=call.tag)
        except pj.Error as e:
            emit("error", call=call.tag, error="hold: %s" % e.info())

    def unhold(self, call):
        """Resume: a re-INVITE with a=sendrecv (PJSUA_CALL_UNHOLD)."""
        if call.disconnected:
            return
        try:
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(prm)
            emit("unhold_sent", call=call.tag)
        except pj.Error as e:
            emit("error", call=call.tag, error="unhold: %s" % e.info())

    def on_tone(self, call, freq):
        if freq in [float(f) for f in self.a.hangup_on_tone] and not call.disconnected:
            if not getattr(call, "hangup_scheduled", False):
                call.hangup_scheduled = True
                call.at(self.a.hangup_delay, "hangup",
                        lambda c=call: self.hangup(c, "tone %g" % freq))

    def send_dtmf(self, call, digits):
        if call.disconnected:
            return
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = (pj.PJSUA_DTMF_METHOD_SIP_INFO if self.a.dtmf_method == "info"
                      else pj.PJSUA_DTMF_METHOD_RFC2833)
        prm.duration = self.a.dtmf_duration
        try:
            call.sendDtmf(prm)
            emit("dtmf_sent", call=call.tag, digits=digits, method=self.a.dtmf_method)
        except pj.Error as e:
            emit("error", call=call.tag, error="sendDtmf: %s" % e.info())

    def hangup(self, call, why):
        if call.disconnected:
            return
        emit("hangup", call=call.tag, why=why)
        try:
            call.hangup(pj.CallOpParam(True))
        except pj.Error as e:
            emit("error", call=call.tag, error="hangup: %s" % e.info())

    def on_disconnected(self, call, ci):
        self.finish_call(call)
        self.finished_calls += 1
        if self.a.role == "caller" or self.finished_calls >= self.a.calls:
            # Linger briefly so final responses/ACKs go out.
            self.done_at = now() + 0.3

    def finish_call(self, call):
        """Stop media, close the recording and report on it (once)."""
        if call.reported:
            return
        call.reported = True
        if call.tracker is not None:
            call.tracker.poll()
        try:
            if call.player is not None and call.aud is not None:
                call.player.stopTransmit(call.aud)
        except pj.Error:
            pass
        try:
            if call.recorder is not None and call.aud is not None:
                call.aud.stopTransmit(call.recorder)
        except pj.Error:
            pass
        call.player = None
        call.recorder = None  # destroys the recorder: header finalised
        if call.rec_path and os.path.exists(call.rec_path):
            for f in sorted(set(self.a.detect)):
                try:
                    rep = audio.tone_report(call.rec_path, f)
                    rep["detected"] = rep["secs"] >= self.a.min_tone_secs
                    rep["min_secs"] = self.a.min_tone_secs
                except (OSError, ValueError) as e:
                    rep = {"file": call.rec_path, "freq": f, "detected": False,
                           "error": str(e)}
                emit("tone_report", call=call.tag, **rep)
            heard = call.tracker.voiced_secs if call.tracker else 0.0
            emit("recording", call=call.tag, file=call.rec_path,
                 heard_secs=round(heard, 3))

    # -- main loop --------------------------------------------------------
    def run(self):
        a = self.a
        deadline = a.timeout
        self.done_at = None
        last_poll = 0.0
        reg_deadline = now() + a.reg_timeout
        while not self.done:
            self.ep.libHandleEvents(10)
            t = now()
            if a.role == "agent" and not self.registered and t > reg_deadline:
                emit("reg_failed", code=0, reason="no answer to REGISTER within %gs" % a.reg_timeout)
                self.exit_code = 1
                break
            for call in list(self.calls):
                due = [x for x in call.actions if x[0] <= t]
                if due:
                    call.actions = [x for x in call.actions if x[0] > t]
                    for _, _name, fn in sorted(due, key=lambda x: x[0]):
                        fn()
                pend = getattr(call, "pending_dtmf", None)
                if pend and call.tracker is not None and call.tracker.heard_at is not None:
                    call.pending_dtmf = []
                    for digits, at in pend:
                        call.at(at, "dtmf", lambda c=call, d=digits: self.send_dtmf(c, d))
            if t - last_poll >= 0.1:
                last_poll = t
                for call in self.calls:
                    if call.tracker is not None and not call.reported:
                        call.tracker.poll()
            if self.done_at is not None and t >= self.done_at:
                break
            if t > deadline:
                emit("timeout", after=a.timeout,
                     states=[(c.tag, c.info().stateText if c.info() else "gone")
                             for c in self.calls])
                self.exit_code = 3
                break

    def shutdown(self):
        for call in self.calls:
            if not call.disconnected:
                try:
                    call.hangup(pj.CallOpParam(True))
                except pj.Error:
                    pass
        end = now() + 0.5
        while now() < end and any(not c.disconnected for c in self.calls):
            self.ep.libHandleEvents(10)
        for call in self.calls:
            self.finish_call(call)
        emit("done", code=self.exit_code, calls=len(self.calls),
             finished=self.finished_calls, registered=self.registered)
        # The Call and Account objects stay referenced until the process
        # ends (os._exit): pjsua2's ~Call asserts in pjsua_call_set_user_data
        # when a call that ended early is destroyed, so they are never
        # destroyed at all. The account unregisters explicitly.
        if self.acc is not None:
            try:
                self.acc.shutdown()
            except pj.Error:
                pass
        end = now() + 0.3
        while now() < end:
            self.ep.libHandleEvents(10)
        try:
            self.ep.libDestroy()
        except pj.Error:
            pass


class PeerAccount(pj.Account):
    def __init__(self, peer):
        pj.Account.__init__(self)
        self.peer = peer

    def onRegState(self, prm):
        self.peer.on_reg(prm)

    def onIncomingCall(self, prm):
        self.peer.on_incoming(prm)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["caller", "agent", "customer"])
    ap.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp")
    ap.add_argument("--ca", help="tls: CA file to verify ringback's certificate with")
    ap.add_argument("--tls-cert", help="tls: our own certificate (to accept connections)")
    ap.add_argument("--tls-key", help="tls: its private key")
    ap.add_argument("--ip", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="local SIP port (0: any)")
    ap.add_argument("--rtp-port", type=int, default=0,
                    help="first local RTP port (0: PJSIP's default, 4000)")
    ap.add_argument("--uri", help="caller: whom to call, e.g. sip:2000@127.0.0.1:5060")
    ap.add_argument("--registrar", help="agent: host:port of ringback")
    ap.add_argument("--user", help="user part (agent: the agent id)")
    ap.add_argument("--password")
    ap.add_argument("--realm", default="*")
    ap.add_argument("--reg-expires", type=int, default=300)
    ap.add_argument("--reg-timeout", type=float, default=10.0)
    ap.add_argument("--calls", type=int, default=1,
                    help="agent/customer: exit after this many calls ended")
    ap.add_argument("--ring-delay", type=float, default=0.0,
                    help="answering roles: 180 first, 200 after this long")
    ap.add_argument("--answer-code", type=int, default=200,
                    help="answering roles: final status (e.g. 486)")
    ap.add_argument("--dtmf", action="append", default=[],
                    help="DIGITS@SECS (repeatable); SECS after CONFIRMED, or after "
                         "the first audio heard with --dtmf-base audio")
    ap.add_argument("--dtmf-base", choices=["confirmed", "audio"], default="confirmed")
    ap.add_argument("--dtmf-method", choices=["rfc2833", "info"], default="rfc2833")
    ap.add_argument("--dtmf-duration", type=int, default=160, help="ms")
    ap.add_argument("--play", type=float, help="play a sine tone of this frequency (Hz)")
    ap.add_argument("--play-wav", help="play this WAV (looped)")
    ap.add_argument("--play-at", type=float, default=0.0,
                    help="start playing this long after media is up")
    ap.add_argument("--amplitude", type=float, default=0.3)
    ap.add_argument("--detect", type=float, action="append", default=[],
                    help="report whether this frequency was heard (repeatable)")
    ap.add_argument("--min-tone-secs", type=float, default=0.5)
    ap.add_argument("--hold-at", type=float,
                    help="put the call on hold (re-INVITE sendonly) this long after CONFIRMED")
    ap.add_argument("--unhold-at", type=float,
                    help="resume it (re-INVITE sendrecv) this long after CONFIRMED")
    ap.add_argument("--hangup-after", type=float,
                    help="hang up this long after CONFIRMED")
    ap.add_argument("--hangup-on-tone", type=float, action="append", default=[],
                    help="hang up once this frequency was heard (plus --hangup-delay)")
    ap.add_argument("--hangup-delay", type=float, default=1.5)
    ap.add_argument("--srtp", choices=["disabled", "optional", "mandatory"],
                    default="disabled")
    ap.add_argument("--timer", choices=["optional", "off", "required"], default="optional",
                    help="session timers (PJSIP's default: optional)")
    ap.add_argument("--prack", choices=["optional", "required"], default="optional")
    ap.add_argument("--codecs", help="comma list to enable only these, e.g. PCMU,PCMA")
    ap.add_argument("--clock-rate", type=int, default=8000)
    ap.add_argument("--dir", help="working directory (tone and recordings)")
    ap.add_argument("--log", help="PJSIP log file (level 5, with SIP messages)")
    ap.add_argument("--timeout", type=float, default=30.0, help="hard limit, seconds")
    a = ap.parse_args(argv)
    if a.role == "caller" and not a.uri:
        ap.error("caller needs --uri")
    if a.role == "agent" and not (a.registrar and a.user):
        ap.error("agent needs --registrar and --user")
    if a.role == "customer" and not a.port:
        ap.error("customer needs --port (the trunk address points at it)")

    # Last-resort watchdog: PJSIP shutdown must never hang a test.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(a.timeout) + 15)

    peer = Peer(a)
    try:
        peer.start()
    except pj.Error as e:
        emit("error", error="setup: %s" % e.info())
        _OUT.flush()
        os._exit(2)
    try:
        peer.run()
    except pj.Error as e:
        emit("error", error="run: %s" % e.info())
        peer.exit_code = peer.exit_code or 2
    except KeyboardInterrupt:
        emit("error", error="interrupted")
        peer.exit_code = peer.exit_code or 2
    code = peer.exit_code
    try:
        peer.shutdown()
    except pj.Error as e:
        emit("error", error="shutdown: %s" % e.info())
    _OUT.flush()
    # Skip interpreter teardown: SWIG destructors after libDestroy can crash.
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
