// Call recording in the pages, in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core), run by tests/recording.rs
// while a PJSIP caller talks to agent alice on a recorded queue.
//
// The agent page (alice's own token) shows the recorded call with a
// "Pause recording" button; clicking it pauses (the badge says so), clicking
// again resumes. Then the dashboard (a supervisor token, entered in its
// sign-in form) lists the recording once the call has ended, and its Play
// button fetches the WAV with the token and plays it from an object URL.
//
// Protocol with the Rust side, one JSON object per stdout line:
//   {"event":"recorded","text":"…"}   the agent page shows the recorded call
//   {"event":"paused","badge":"…"}    Pause recording was clicked
//   {"event":"resumed","badge":"…"}   Resume recording was clicked
//   {"event":"listed","text":"…"}     the dashboard lists the finished recording
//   {"event":"played","src":"blob:…","duration":D}  the player holds the WAV
//   {"event":"error","message":"…"}   a step failed (then exit 1)
//
// Environment: RINGBACK_URL, AGENT_TOKEN (alice's), SUPER_TOKEN, SCREENSHOT
// (optional PNG path of the dashboard), CHROMIUM.

import { chromium } from "playwright-core";

const BASE = process.env.RINGBACK_URL;
const AGENT_TOKEN = process.env.AGENT_TOKEN || "";
const SUPER_TOKEN = process.env.SUPER_TOKEN || "";
const SHOT = process.env.SCREENSHOT || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

function emit(o) { process.stdout.write(JSON.stringify(o) + "\n"); }
function log(m) { process.stderr.write(`[recording] ${m}\n`); }

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
  });
  const context = await browser.newContext();
  const agent = await context.newPage();
  agent.on("pageerror", (e) => log(`agent page error: ${e.message}`));
  await agent.goto(`${BASE}/agent?token=${encodeURIComponent(AGENT_TOKEN)}`);
  const button = agent.getByTestId("btn-recording");
  const badge = agent.getByTestId("recording-state");
  await button.filter({ hasText: "Pause recording" }).waitFor({ state: "visible", timeout: 30000 });
  emit({ event: "recorded", text: await agent.getByTestId("call-context").innerText() });
  await button.click();
  await badge.filter({ hasText: "Recording paused" }).waitFor({ timeout: 5000 });
  await button.filter({ hasText: "Resume recording" }).waitFor({ timeout: 5000 });
  emit({ event: "paused", badge: await badge.innerText() });
  await agent.waitForTimeout(1500);
  await button.click();
  await badge.filter({ hasText: "Recording" }).filter({ hasNotText: "paused" }).waitFor({ timeout: 5000 });
  emit({ event: "resumed", badge: await badge.innerText() });
  // When the call ends the button goes.
  await button.waitFor({ state: "hidden", timeout: 30000 });

  const dash = await context.newPage();
  dash.on("pageerror", (e) => log(`dashboard page error: ${e.message}`));
  await dash.goto(`${BASE}/`);
  await dash.getByTestId("token-input").fill(SUPER_TOKEN);
  await dash.getByTestId("token-submit").click();
  const play = dash.locator("[data-testid^=play-recording-]").first();
  // The panel refreshes every 10 s; the recording completes a moment
  // after the call.
  const until = Date.now() + 30000;
  while (!(await play.isVisible()) || !(await play.isEnabled())) {
    if (Date.now() > until) throw new Error("no playable recording on the dashboard");
    await dash.waitForTimeout(500);
  }
  emit({ event: "listed", text: await dash.getByTestId("recordings").innerText() });
  await play.click();
  const player = dash.getByTestId("recording-player");
  await player.waitFor({ state: "visible", timeout: 10000 });
  const ready = Date.now() + 10000;
  let got = null;
  for (;;) {
    got = await player.evaluate((a) => ({ src: a.currentSrc || a.src, duration: a.duration, error: a.error && a.error.code }));
    if (got.src.startsWith("blob:") && got.duration > 0 && Number.isFinite(got.duration)) break;
    if (got.error) throw new Error(`the player cannot decode the WAV (MediaError ${got.error})`);
    if (Date.now() > ready) throw new Error(`the player has no audio: ${JSON.stringify(got)}`);
    await dash.waitForTimeout(200);
  }
  if (SHOT) await dash.screenshot({ path: SHOT, fullPage: true });
  emit({ event: "played", src: got.src, duration: got.duration });
  await browser.close();
} catch (e) {
  emit({ event: "error", message: String(e && e.stack || e) });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
