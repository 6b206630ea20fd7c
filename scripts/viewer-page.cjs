// Drives the viewer's page of a running edge-server in headless Chromium as a person would:
// picks a viewer, clicks two titles, checks that each watch shows the edge's verdict and
// that the stats moved, and saves a screenshot.
//
//   npm install --prefix /tmp/pw playwright-core   # once
//   NODE_PATH=/tmp/pw/node_modules node scripts/viewer-page.cjs http://127.0.0.1:8080 /tmp/page.png
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM). Exits non-zero on any failure.
"use strict";
const { chromium } = require("playwright-core");

const [base = "http://127.0.0.1:8080", shot = "/tmp/viewer-page.png"] = process.argv.slice(2);
async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base + "/");
    await page.fill("#viewer", "PAGE-VIEWER");
    await page.dispatchEvent("#viewer", "change");
    await page.waitForSelector("#catalog .title");
    const before = await page.textContent("#s-req");
    const titles = await page.$$eval("#catalog .title", (b) => b.map((x) => x.textContent));
    for (const [i, title] of titles.slice(0, 2).entries()) {
      await page.click(`#catalog .title >> nth=${i}`);
      await page.waitForFunction((n) => document.querySelectorAll("#log tr").length >= n && !document.querySelector("#log .empty"), i + 1);
      const verdict = await page.textContent("#log tr:first-child td:nth-child(2)");
      if (!["HIT", "MISS", "PREFETCHED-HIT"].includes(verdict)) throw new Error(`watching ${title} showed ${verdict}`);
      console.log(`watched ${title}: ${verdict}`);
    }
    await page.waitForFunction((b) => document.querySelector("#s-req").textContent !== b, before);
    await page.waitForSelector("#next .title");
    console.log(`stats ${before} -> ${await page.textContent("#s-req")}, byte hit ratio ${await page.textContent("#s-ratio")}`);
    console.log(`up next: ${(await page.$$eval("#next .title", (b) => b.map((x) => x.firstChild.textContent))).join(", ")}`);
    if (errors.length) throw new Error("page errors: " + errors.join("; "));
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
