// The public "call us" page (/call) in real headless Chromium, run by
// tests/browser_webcall.rs. The visitor clicks **Call**, navigates the IVR
// with the page's keypad (RFC 4733 from the browser), and talks to a SIP
// agent: Chromium's fake microphone plays a known tone, and the page must
// play the agent's tone (checked by frequency with an AnalyserNode).
//
// Events on stdout, one JSON object per line:
//   {"event":"connected"}                 the call is up (DTLS-SRTP)
//   {"event":"keys_sent","keys":"…"}      the keypad was used
//   {"event":"heard","freq":F,"db":D}     the loudest frequency played
//   {"event":"ended","status":"…"}        the page shows the call ended
//   {"event":"refused","message":"…"}     (EXPECT_REFUSAL) the page's alert
//   {"event":"error","message":"…"}
//
// Environment: RINGBACK_URL, NUMBER, TOPIC, KEYS (groups separated by
// spaces, pressed 2 s apart), HEAR (Hz to wait for), TONE_WAV, CHROMIUM.

import { chromium } from "playwright-core";
import { loudest } from "./heard.mjs";

const BASE = process.env.RINGBACK_URL;
const NUMBER = process.env.NUMBER || "2000";
const TOPIC = process.env.TOPIC || "";
const KEYS = (process.env.KEYS || "").split(" ").filter(Boolean);
const HEAR = Number(process.env.HEAR || "0");
const WAV = process.env.TONE_WAV;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

function emit(o) { process.stdout.write(JSON.stringify(o) + "\n"); }
function log(m) { process.stderr.write(`[webcall] ${m}\n`); }

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${WAV}`, "--autoplay-policy=no-user-gesture-required"],
  });
  const context = await browser.newContext({ permissions: ["microphone"] });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") log(`console: ${m.text()}`); });
  const q = new URLSearchParams({ number: NUMBER });
  if (TOPIC) q.set("topic", TOPIC);
  await page.goto(`${BASE}/call?${q}`);
  await page.getByRole("button", { name: "Call", exact: true }).click();
  if (process.env.EXPECT_REFUSAL) {
    // An overloaded server says so: the page shows why, and offers Call again.
    const alert = page.getByRole("alert");
    await alert.waitFor({ state: "visible", timeout: 15000 });
    await page.getByRole("button", { name: "Call", exact: true }).waitFor({ state: "visible", timeout: 5000 });
    emit({ event: "refused", message: await alert.innerText() });
    await browser.close();
    process.exit(0);
  }
  await page.getByTestId("call-status").filter({ hasText: "Connected" }).waitFor({ timeout: 15000 });
  emit({ event: "connected" });

  let sent = "";
  for (const group of KEYS) {
    await page.waitForTimeout(2000);
    for (const k of group) {
      await page.getByRole("group", { name: "Keypad" }).getByRole("button", { name: k, exact: true }).click();
      sent += k;
      await page.waitForTimeout(350);
    }
  }
  emit({ event: "keys_sent", keys: sent, shown: await page.getByTestId("keys-pressed").innerText() });

  // Wait for the agent's tone: the loudest frequency the page plays.
  const heard = await loudest(page, "audio", HEAR, 30000);
  emit({ event: "heard", freq: heard.freq, db: heard.db });

  await page.getByRole("button", { name: "Call", exact: true }).waitFor({ state: "visible", timeout: 40000 });
  emit({ event: "ended", status: await page.getByTestId("call-status").innerText() });
  await browser.close();
  process.exit(0);
} catch (e) {
  emit({ event: "error", message: String(e && e.stack || e) });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
