// Drives the node's softphone page in headless Chromium (Debian's chromium,
// playwright-core). Prints one JSON line: what the page saw.
//
//   node softphone.mjs call  BASE TOKEN NUMBER DIGITS MIC.wav SECONDS
//   node softphone.mjs agent BASE TOKEN MIC.wav SECONDS
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [mode, base, token, ...rest] = process.argv.slice(2);
const mic = mode === "call" ? rest[2] : rest[0];
const seconds = Number(mode === "call" ? rest[3] : rest[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "chromium-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${mic}%noloop`, "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const result = { connected: false, maxLevel: 0, status: "" };
try {
  const page = await context.newPage();
  page.on("console", (m) => console.error(`page: ${m.text()}`));
  await page.goto(`${base}/phone`);
  await page.fill("#token", token);
  const waitConnected = async (ms) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if ((await page.evaluate(() => window.phone.connection())) === "connected") return true;
      await sleep(100);
    }
    return false;
  };
  if (mode === "call") {
    const [number, digits] = rest;
    await page.fill("#number", number);
    await page.click("#call");
    result.connected = await waitConnected(15000);
    await sleep(1500);
    for (const d of digits) {
      await page.click(`#key-${d === "*" ? "star" : d === "#" ? "hash" : d}`);
      await sleep(700);
    }
  } else {
    await page.click("#login");
    await page.waitForSelector("#incoming", { state: "visible", timeout: 30000 });
    result.from = await page.textContent("#from");
    await page.click("#answer");
    result.connected = await waitConnected(15000);
  }
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until && (await page.evaluate(() => window.phone.connection())) === "connected") {
    result.maxLevel = Math.max(result.maxLevel, await page.evaluate(() => window.phone.inboundLevel()));
    await sleep(200);
  }
  result.status = await page.textContent("#status");
  if (await page.isEnabled("#hangup")) await page.click("#hangup");
  await sleep(500);
} catch (e) {
  result.error = String(e);
} finally {
  await context.close();
}
console.log(JSON.stringify(result));
