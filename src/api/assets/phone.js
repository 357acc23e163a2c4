// ringback · the agent page's browser phone (WebRTC).
//
// Signalling: a WebSocket to /api/v1/phone (JSON frames: hello, ring,
// cancel, hangup, error, replaced from the server; answer, reject, hangup,
// hold, ping from here). Media: one RTCPeerConnection per call, G.711 over
// DTLS-SRTP to ringback's RTP port (ringback is ICE-lite, so no candidates
// need to be sent: its checks arrive from the browser's own).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const LABELS = { "Caller-Name": "Name", Caller: "Number", Account: "Account", Path: "Path in the menu", Digits: "Digits entered", Waited: "Waited (s)", Repeat: "Previous calls (7 days)", Queue: "Queue", Topic: "Web page topic", Callback: "Callback", Context: "Callback notes" };
  let ws = null, token = "", agent = "", iceServers = [], retry = 1000, stopped = false;
  let call = null; // { leg, sdp, context, pc, stream, muted, held, state }
  let meterCtx = null, meterTimer = null;

  function status(text, state) {
    const s = $("ph-status");
    s.textContent = text;
    s.dataset.state = state || "idle";
  }
  function say(msg) { const a = $("announcer"); if (a) a.textContent = msg; }

  function start(tok, agentId) {
    token = tok || ""; agent = agentId || ""; stopped = false;
    $("phone").hidden = false;
    connect();
  }

  function connect() {
    if (stopped) return;
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    if (agent) q.set("agent", agent);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let hello = false;
    ws = new WebSocket(`${proto}//${location.host}/api/v1/phone?${q}`);
    status("Connecting the browser phone…", "idle");
    ws.onmessage = (ev) => {
      let m; try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (m.type === "hello") { hello = true; retry = 1000; iceServers = m.ice_servers || []; status("Browser phone ready", "live"); refreshMics(); }
      else if (m.type === "ring") ring(m);
      else if (m.type === "cancel") { if (call && call.leg === m.leg) { end("Missed call (stopped ringing)."); } }
      else if (m.type === "hangup") { if (call && call.leg === m.leg) end("The caller hung up."); }
      else if (m.type === "error") { showError(m.message); }
      else if (m.type === "replaced") { stopped = true; status("The phone moved to another tab or window of this agent.", "lost"); }
    };
    ws.onclose = () => {
      ws = null;
      if (call) end("Connection to ringback lost: the call ended.");
      if (stopped) return;
      status(hello ? "Browser phone disconnected — reconnecting…" : "Browser phone not available (is webrtc = true set for this agent?) — retrying…", "lost");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  setInterval(() => { if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" })); }, 15000);

  function send(m) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(m)); }
  function showError(msg) { const e = $("ph-error"); e.textContent = msg; e.hidden = !msg; }

  function ring(m) {
    if (call) { send({ type: "reject", leg: m.leg }); return; }
    call = { leg: m.leg, sdp: m.sdp, context: m.context || {}, state: "ringing", muted: false, held: false };
    showError("");
    const c = call.context;
    const who = c["Caller-Name"] ? `${c["Caller-Name"]} (${c.Caller || "anonymous"})` : (c.Caller || "anonymous");
    $("ph-who").textContent = who;
    const dl = $("ph-ctx");
    dl.replaceChildren();
    for (const [k, label] of Object.entries(LABELS)) {
      if (!c[k] || k === "Caller" || k === "Caller-Name") continue;
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = c[k];
      dl.append(dt, dd);
    }
    for (const [k, v] of Object.entries(c)) {
      if (!k.startsWith("Var-")) continue;
      const dt = document.createElement("dt"); dt.textContent = k.slice(4);
      const dd = document.createElement("dd"); dd.textContent = v;
      dl.append(dt, dd);
    }
    render();
    status("Ringing", "ring");
    say(`Incoming call: ${who}${c.Path ? ", path " + c.Path : ""}. Press Answer.`);
  }

  async function answer() {
    if (!call || call.state !== "ringing") return;
    const leg = call.leg;
    call.state = "connecting"; render();
    try {
      const mic = $("ph-mic").value;
      const stream = await navigator.mediaDevices.getUserMedia({ audio: mic ? { deviceId: { exact: mic } } : true });
      if (!call || call.leg !== leg) { stream.getTracks().forEach((t) => t.stop()); return; }
      const pc = new RTCPeerConnection({ iceServers });
      call.pc = pc; call.stream = stream;
      for (const t of stream.getAudioTracks()) pc.addTrack(t, stream);
      pc.ontrack = (e) => { const a = $("ph-audio"); a.srcObject = e.streams[0] || new MediaStream([e.track]); a.play().catch(() => {}); };
      pc.onconnectionstatechange = () => {
        if (!call || call.pc !== pc) return;
        if (pc.connectionState === "connected") { call.state = "connected"; status("On a call", "call"); render(); }
        if (pc.connectionState === "failed") { send({ type: "hangup", leg }); end("The call's media failed (network)."); }
      };
      await pc.setRemoteDescription({ type: "offer", sdp: call.sdp });
      const ans = await pc.createAnswer();
      await pc.setLocalDescription(ans);
      send({ type: "answer", leg, sdp: pc.localDescription.sdp });
      meter(stream);
      refreshMics();
    } catch (e) {
      send({ type: "reject", leg });
      end(`Could not answer: ${e.message || e}`);
    }
  }

  function hangup() {
    if (!call) return;
    send({ type: call.state === "ringing" ? "reject" : "hangup", leg: call.leg });
    end(call.state === "ringing" ? "Declined." : "Call ended.");
  }

  function end(msg) {
    if (call) {
      if (call.pc) call.pc.close();
      if (call.stream) call.stream.getTracks().forEach((t) => t.stop());
    }
    call = null;
    clearInterval(meterTimer); meterTimer = null;
    if (meterCtx) { meterCtx.close().catch(() => {}); meterCtx = null; }
    $("ph-level").value = 0;
    $("ph-audio").srcObject = null;
    status(ws ? "Browser phone ready" : "Browser phone disconnected", ws ? "live" : "lost");
    render();
    if (msg) say(msg);
    const last = $("ph-last"); last.textContent = msg || ""; last.hidden = !msg;
  }

  function toggleMute() {
    if (!call || !call.stream) return;
    call.muted = !call.muted;
    call.stream.getAudioTracks().forEach((t) => { t.enabled = !call.muted && !call.held; });
    render();
  }

  function toggleHold() {
    if (!call || call.state === "ringing") return;
    call.held = !call.held;
    send({ type: "hold", leg: call.leg, on: call.held });
    if (call.stream) call.stream.getAudioTracks().forEach((t) => { t.enabled = !call.muted && !call.held; });
    $("ph-audio").muted = call.held;
    render();
  }

  function dtmf(d) {
    if (!call || !call.pc) return;
    const s = call.pc.getSenders().find((x) => x.track && x.track.kind === "audio");
    if (s && s.dtmf && s.dtmf.canInsertDTMF) s.dtmf.insertDTMF(d, 120, 70);
  }

  function meter(stream) {
    try {
      meterCtx = new AudioContext();
      const src = meterCtx.createMediaStreamSource(stream);
      const an = meterCtx.createAnalyser(); an.fftSize = 512;
      src.connect(an);
      const buf = new Float32Array(an.fftSize);
      meterTimer = setInterval(() => {
        an.getFloatTimeDomainData(buf);
        let sum = 0; for (const v of buf) sum += v * v;
        $("ph-level").value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
      }, 100);
    } catch (_) { /* no meter without Web Audio */ }
  }

  async function refreshMics() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const sel = $("ph-mic"), keep = sel.value;
    const mics = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
    sel.replaceChildren(...[{ deviceId: "", label: "Default microphone" }, ...mics.filter((m) => m.deviceId && m.deviceId !== "default")].map((m, i) => {
      const o = document.createElement("option"); o.value = m.deviceId; o.textContent = m.label || `Microphone ${i}`; return o;
    }));
    sel.value = keep;
  }

  async function switchMic() {
    if (!call || !call.pc || !call.stream) return;
    const mic = $("ph-mic").value;
    const s = await navigator.mediaDevices.getUserMedia({ audio: mic ? { deviceId: { exact: mic } } : true });
    const track = s.getAudioTracks()[0];
    const sender = call.pc.getSenders().find((x) => x.track && x.track.kind === "audio");
    if (sender && track) {
      await sender.replaceTrack(track);
      call.stream.getTracks().forEach((t) => t.stop());
      call.stream = s;
      track.enabled = !call.muted && !call.held;
    }
  }

  function render() {
    const ringing = !!call && call.state === "ringing";
    const live = !!call && call.state !== "ringing";
    $("ph-call").hidden = !call;
    $("ph-answer").hidden = !ringing;
    $("ph-hangup").hidden = !call;
    $("ph-hangup").textContent = ringing ? "Decline" : "Hang up";
    $("ph-mute").hidden = $("ph-hold").hidden = $("ph-keypad").hidden = !live;
    $("ph-mute").textContent = call && call.muted ? "Unmute" : "Mute";
    $("ph-mute").setAttribute("aria-pressed", String(!!(call && call.muted)));
    $("ph-hold").textContent = call && call.held ? "Resume" : "Hold";
    $("ph-hold").setAttribute("aria-pressed", String(!!(call && call.held)));
    $("ph-state").textContent = !call ? "" : ringing ? "Ringing" : call.state === "connected" ? (call.held ? "On hold" : "Connected") : "Connecting…";
    if (ringing) $("ph-answer").focus();
  }

  $("ph-answer").addEventListener("click", answer);
  $("ph-hangup").addEventListener("click", hangup);
  $("ph-mute").addEventListener("click", toggleMute);
  $("ph-hold").addEventListener("click", toggleHold);
  $("ph-mic").addEventListener("change", switchMic);
  for (const b of $("ph-keypad").querySelectorAll("button[data-key]")) b.addEventListener("click", () => dtmf(b.dataset.key));
  window.addEventListener("beforeunload", () => { if (call) send({ type: "hangup", leg: call.leg }); });

  window.ringbackPhone = { start, get pc() { return call && call.pc; }, get state() { return call ? call.state : "idle"; } };
})();
