// Browser test of ringback's supervisor dashboard and agent page, in real
// headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core.
//
// Run by tests/browser_dashboard.rs, which starts ringback, registers an
// agent, puts a SIPp caller into a queue and talks to this script over
// stdout/stdin, one line per step:
//
//   node -> rust  READY_FOR_HANGUP        the waiting caller is on the page
//   rust -> node  HUNG_UP                 the caller's SIPp sent BYE (200 OK)
//   node -> rust  READY_FOR_SERVER_STOP   all other checks are done
//   rust -> node  SERVER_STOPPED          ringback was killed
//
// Environment: RINGBACK_URL (http://127.0.0.1:PORT), RINGBACK_TOKEN (admin
// token, may be empty when the server has none), RINGBACK_AGENT_TOKEN
// (optional: an `agent` token bound to RINGBACK_AGENT), RINGBACK_CALLER
// (default +15550123), RINGBACK_AGENT (default alice), RINGBACK_CALLBACK
// (optional: id of a scheduled callback to cancel from the page),
// SCREENSHOT (path of the dashboard screenshot; the agent page's goes next
// to it as agent.png).
//
// Prints one "ok - …" / "not ok - …" line per check and a closing
// "N passed, N failed" line; exits non-zero on any failure.

import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

const BASE = process.env.RINGBACK_URL || "http://127.0.0.1:8080";
const TOKEN = process.env.RINGBACK_TOKEN || "";
const AGENT_TOKEN = process.env.RINGBACK_AGENT_TOKEN || "";
const CALLER = process.env.RINGBACK_CALLER || "+15550123";
const AGENT = process.env.RINGBACK_AGENT || "alice";
const CALLBACK = process.env.RINGBACK_CALLBACK || "";
const SHOT = path.resolve(process.env.SCREENSHOT || "dashboard.png");
const AGENT_SHOT = path.join(path.dirname(SHOT), "agent.png");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let passed = 0, failed = 0;
const pageErrors = [];

function log(msg) { process.stderr.write(`[browser] ${msg}\n`); }

// Lines from the Rust side, consumed in order.
const lines = [];
let waiter = null;
readline.createInterface({ input: process.stdin }).on("line", (l) => {
  lines.push(l.trim());
  if (waiter) waiter();
});
async function expectLine(want, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const i = lines.indexOf(want);
    if (i >= 0) { lines.splice(0, i + 1); return; }
    const left = until - Date.now();
    if (left <= 0) throw new Error(`no "${want}" from the test driver within ${timeoutMs} ms`);
    await new Promise((r) => { waiter = r; setTimeout(r, Math.min(left, 500)); });
    waiter = null;
  }
}
function tell(line) { process.stdout.write(`${line}\n`); }

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    tell(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    tell(`not ok - ${name}: ${String(e && e.message || e).split("\n").slice(0, 6).join(" | ")}`);
    throw e;
  }
}

async function api(p, token = TOKEN) {
  const r = await fetch(BASE + p, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const body = await r.text();
  if (!r.ok) throw new Error(`GET ${p}: HTTP ${r.status} ${body}`);
  return JSON.parse(body);
}
async function agentFromApi(id) {
  const v = await api("/api/v1/agents");
  const a = (v.agents || []).find((x) => x.id === id);
  if (!a) throw new Error(`agent ${id} missing from /api/v1/agents: ${JSON.stringify(v)}`);
  return a;
}
async function poll(what, fn, timeoutMs) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last === true) return; } catch (e) { last = e.message; }
    if (Date.now() > until) throw new Error(`${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function signIn(page, token) {
  if (!token) return;
  const input = page.getByTestId("token-input");
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(token);
  await page.getByTestId("token-submit").click();
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ringback-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1440, height: 900 },
    locale: "en-US",
    timezoneId: "UTC",
  });
  const page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (e) => { pageErrors.push(e.message); log(`page error: ${e.message}`); });
  // (The pages probe /api/v1/me before a token is entered: that 401 is expected.)
  page.on("console", (m) => { if (m.type() === "error" && !/status of 401/.test(m.text())) log(`console: ${m.text()}`); });

  await check("dashboard loads and signs in with the token", async () => {
    const resp = await page.goto(`${BASE}/`);
    if (!resp || resp.status() !== 200) throw new Error(`GET / answered ${resp && resp.status()}`);
    if (TOKEN) {
      // A wrong token is refused with a clear message and the form again.
      await signIn(page, "definitely-wrong");
      await page.getByTestId("notice").filter({ hasText: "refused" }).waitFor({ timeout: 10_000 });
      await signIn(page, TOKEN);
    }
    await page.getByTestId("connection-status").filter({ hasText: "Live" }).waitFor({ timeout: 10_000 });
  });

  const row = page.getByTestId(`waiting-${CALLER}`);
  await check(`waiting caller ${CALLER} appears within 10 s`, async () => {
    await row.first().waitFor({ state: "visible", timeout: 10_000 });
    const text = await row.first().innerText();
    if (!text.includes(CALLER)) throw new Error(`row text: ${text}`);
  });

  if (CALLBACK) {
    await check("pending callback is listed with its controls", async () => {
      await page.getByTestId(`callback-${CALLBACK}`).waitFor({ timeout: 10_000 });
      await page.getByTestId(`reschedule-callback-${CALLBACK}`).waitFor();
    });
  }

  await check("screenshot of the live dashboard", async () => {
    // Let the chart and the callback list settle, then capture.
    await page.waitForTimeout(1200);
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT, fullPage: true });
    log(`screenshot: ${SHOT}`);
  });

  tell("READY_FOR_HANGUP");
  await check("caller leaves the page within 10 s of hanging up", async () => {
    await expectLine("HUNG_UP", 60_000);
    await row.first().waitFor({ state: "detached", timeout: 10_000 });
  });

  await check(`pausing ${AGENT} in the page changes its state in the API`, async () => {
    const state = page.getByTestId(`agent-state-${AGENT}`);
    await state.filter({ hasText: "available" }).waitFor({ timeout: 10_000 });
    await page.getByTestId(`pause-${AGENT}`).click();
    const input = page.getByTestId("dialog-input");
    await input.waitFor({ state: "visible" });
    await input.fill("lunch");
    await page.getByTestId("dialog-confirm").click();
    await state.filter({ hasText: "paused" }).waitFor({ timeout: 10_000 });
    await poll(`${AGENT} paused with reason lunch in /api/v1/agents`, async () => {
      const a = await agentFromApi(AGENT);
      return (a.state === "paused" && a.reason === "lunch") || a;
    }, 5_000);
    await page.getByTestId(`unpause-${AGENT}`).waitFor({ state: "visible" });
  });

  if (CALLBACK) {
    await check("cancelling the callback in the page cancels it in the API", async () => {
      await page.getByTestId(`cancel-callback-${CALLBACK}`).click();
      await page.getByTestId("dialog-input").fill("resolved by email");
      await page.getByTestId("dialog-confirm").click();
      await page.getByTestId(`callback-${CALLBACK}`).waitFor({ state: "detached", timeout: 10_000 });
      await poll("callback cancelled in the API", async () => {
        const cb = await api(`/api/v1/callbacks/${encodeURIComponent(CALLBACK)}`);
        return cb.state === "cancelled" || cb.state;
      }, 5_000);
    });
  }

  if (AGENT_TOKEN) {
    const ap = await context.newPage();
    ap.on("pageerror", (e) => { pageErrors.push(e.message); log(`agent page error: ${e.message}`); });
    await check(`agent page with ${AGENT}'s own token shows the pause and unpauses`, async () => {
      const resp = await ap.goto(`${BASE}/agent`);
      if (!resp || resp.status() !== 200) throw new Error(`GET /agent answered ${resp && resp.status()}`);
      await signIn(ap, AGENT_TOKEN);
      await ap.getByTestId("my-state").filter({ hasText: "paused" }).waitFor({ timeout: 10_000 });
      const reason = await ap.getByTestId("my-reason").innerText();
      if (reason !== "lunch") throw new Error(`reason shown: ${reason}`);
      if (await ap.getByTestId("agent-select").isVisible()) throw new Error("an agent token must not get the agent picker");
      await ap.waitForTimeout(500);
      await ap.screenshot({ path: AGENT_SHOT, fullPage: true });
      await ap.getByTestId("btn-unpause").click();
      await ap.getByTestId("my-state").filter({ hasText: "available" }).waitFor({ timeout: 10_000 });
      await poll(`${AGENT} available again in /api/v1/agents`, async () => (await agentFromApi(AGENT)).state === "available" || "not yet", 5_000);
    });
    await check("the dashboard follows the agent page's change", async () => {
      await page.getByTestId(`agent-state-${AGENT}`).filter({ hasText: "available" }).waitFor({ timeout: 10_000 });
    });
  }

  tell("READY_FOR_SERVER_STOP");
  await check("losing the stream shows 'connection lost, retrying'", async () => {
    await expectLine("SERVER_STOPPED", 30_000);
    await page.getByTestId("connection-lost").waitFor({ state: "visible", timeout: 10_000 });
    const status = await page.getByTestId("connection-status").innerText();
    if (!/lost/i.test(status)) throw new Error(`status pill says: ${status}`);
  });

  await check("no JavaScript errors on the pages", async () => {
    if (pageErrors.length) throw new Error(pageErrors.join("; "));
  });
} catch (e) {
  log(`failed: ${e && e.stack || e}`);
  if (failed === 0) { failed++; tell(`not ok - ${e && e.message || e}`); }
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
tell(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
