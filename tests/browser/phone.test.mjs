// The agent page's browser phone in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core), run by
// tests/browser_phone.rs. Chromium's fake microphone plays a WAV with a
// known tone (--use-file-for-fake-audio-capture); the PJSIP caller on the
// other side must hear it, and this page must receive the caller's audio.
//
// Protocol with the Rust side, one JSON object per stdout line:
//   {"event":"ready"}                     the page's phone is connected
//   {"event":"ringing","context":"…"}     the call rings; the page's text
//   {"event":"answered"}                  Answer was clicked
//   {"event":"media","packets":N,"level":L,"bytes":B}  inbound audio stats
//   {"event":"heard","freq":F,"db":D}     the loudest frequency played
//   {"event":"hung_up"}                   (HANGUP=page) Hang up was clicked
//   {"event":"ended","text":"…"}          the page shows the call ended
//   {"event":"error","message":"…"}       a step failed (then exit 1)
//
// Environment: RINGBACK_URL, AGENT_TOKEN (or AGENT with an open API), HEAR
// (Hz: wait for this tone instead of the loudest over 2 s), TONE_WAV, HANGUP ("page",
// "caller", or "close": the tab is closed mid-call, then {"event":"closed"}), SCREENSHOT (optional PNG path), CHROMIUM.

import { chromium } from "playwright-core";
import { loudest } from "./heard.mjs";

const BASE = process.env.RINGBACK_URL;
const TOKEN = process.env.AGENT_TOKEN || "";
const WAV = process.env.TONE_WAV;
const HANGUP = process.env.HANGUP || "page";
const SHOT = process.env.SCREENSHOT || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const AGENT = process.env.AGENT || "";
const HEAR = Number(process.env.HEAR || "0");

function emit(o) { process.stdout.write(JSON.stringify(o) + "\n"); }
function log(m) { process.stderr.write(`[phone] ${m}\n`); }

async function inboundAudio(page) {
  return page.evaluate(async () => {
    const pc = window.ringbackPhone && window.ringbackPhone.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let r = null;
    stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") r = { packets: s.packetsReceived || 0, bytes: s.bytesReceived || 0, level: s.audioLevel || 0, energy: s.totalAudioEnergy || 0 }; });
    return r;
  });
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${WAV}`,
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const context = await browser.newContext({ permissions: ["microphone"] });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") log(`console ${m.type()}: ${m.text()}`); });
  // An agent token signs straight in; an open API names the agent instead.
  const q = new URLSearchParams();
  if (TOKEN) q.set("token", TOKEN);
  if (AGENT) q.set("agent", AGENT);
  await page.goto(`${BASE}/agent?${q}`);
  await page.getByTestId("phone-status").filter({ hasText: "Browser phone ready" }).waitFor({ timeout: 15000 });
  emit({ event: "ready" });

  const answer = page.getByRole("button", { name: "Answer", exact: true });
  await answer.waitFor({ state: "visible", timeout: 30000 });
  const text = await page.getByTestId("browser-phone").innerText();
  emit({ event: "ringing", context: text });
  await answer.click();
  emit({ event: "answered" });

  // Media: wait until the caller's audio arrives with a level.
  const until = Date.now() + 20000;
  let best = null;
  while (Date.now() < until) {
    const a = await inboundAudio(page);
    if (a) best = a;
    if (a && a.packets > 100 && a.energy > 0) break;
    await page.waitForTimeout(250);
  }
  emit({ event: "media", packets: best ? best.packets : 0, level: best ? best.level : 0, energy: best ? best.energy : 0, bytes: best ? best.bytes : 0, state: await page.evaluate(() => window.ringbackPhone.state) });
  // Content, not counts: the strongest frequency of what the page plays.
  const heard = await loudest(page, "ph-audio", HEAR, HEAR ? 30000 : 2000);
  emit({ event: "heard", freq: heard.freq, db: heard.db });
  if (SHOT) await page.screenshot({ path: SHOT, fullPage: true });

  if (HANGUP === "close") {
    // The agent closes the tab mid-call: no hang-up frame, no goodbye.
    await page.waitForTimeout(2000);
    await page.close({ runBeforeUnload: false });
    emit({ event: "closed" });
    await browser.close();
    process.exit(0);
  }
  if (HANGUP === "page") {
    // Long enough for the caller to hear this side's tone first.
    await page.waitForTimeout(4000);
    await page.getByRole("button", { name: "Hang up", exact: true }).click();
    emit({ event: "hung_up" });
  } else {
    await page.getByRole("button", { name: "Hang up", exact: true }).waitFor({ state: "hidden", timeout: 40000 });
  }
  const last = await page.locator("#ph-last").innerText();
  emit({ event: "ended", text: last, state: await page.evaluate(() => window.ringbackPhone.state) });
  await browser.close();
  process.exit(0);
} catch (e) {
  emit({ event: "error", message: String(e && e.stack || e) });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
