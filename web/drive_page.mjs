// Drives the page of `liser export --web` in Chromium, headless, for the browser test (tests/test_web.py).
//
//   node web/drive_page.mjs '{"url": "http://127.0.0.1:PORT/", "files": ["a.wav"], "screenshot": "plot.png",
//                             "chromium": "/usr/bin/chromium", "profile": "/tmp/fresh", "microphone_s": 4}'
//
// Loads the page, gives it each file through its file input, and prints one JSON object: each file's result as
// the page holds it (window.liser.results), the microphone's when microphone_s is given (Chromium's fake
// device), the page's console errors, and the requests that left 127.0.0.1 (there must be none).
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const flags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
];
const context = await chromium.launchPersistentContext(options.profile, {
  executablePath: options.chromium,
  headless: true,
  args: flags,
  viewport: { width: 1000, height: 900 },
  permissions: ["microphone"],
});
const report = { results: {}, errors: [], outside: [], states: {} };
try {
  const page = await context.newPage();
  page.on("console", (message) => message.type() === "error" && report.errors.push(message.text()));
  page.on("pageerror", (problem) => report.errors.push(String(problem)));
  page.on("request", (request) => {
    if (!request.url().startsWith(options.url)) report.outside.push(request.url());
  });
  await page.goto(options.url);
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: 60000 });
  report.states.loaded = await page.evaluate(() => document.body.dataset.state);
  for (const file of options.files) {
    const name = file.split("/").pop();
    await page.setInputFiles("#file", file);
    await page.waitForFunction(
      (wanted) => window.liser.results[wanted] || document.body.dataset.state === "error",
      name,
      { timeout: 60000 },
    );
    report.results[name] = await page.evaluate((wanted) => window.liser.results[wanted] ?? null, name);
    report.states[name] = await page.evaluate(() => document.getElementById("status").textContent);
  }
  if (options.screenshot) await page.locator("#results").screenshot({ path: options.screenshot });
  if (options.microphone_s) {
    await page.click("#microphone");
    await page.waitForFunction(() => document.body.dataset.state === "recording", null, { timeout: 20000 });
    await page.waitForTimeout(1000 * options.microphone_s);
    await page.click("#microphone");
    await page.waitForFunction(
      () => window.liser.results.microphone || document.body.dataset.state === "error",
      null,
      { timeout: 60000 },
    );
    report.results.microphone = await page.evaluate(() => window.liser.results.microphone ?? null);
    report.states.microphone = await page.evaluate(() => document.getElementById("status").textContent);
  }
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(report));
