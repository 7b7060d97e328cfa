// check.mjs DIST PNG: serves the built dashboard (DIST) on a loopback port,
// opens it in Chromium (playwright-core; CHROMIUM names the browser,
// /usr/bin/chromium by default), waits for every panel's chart, saves a
// full-page screenshot to PNG and prints what the page shows, one line each:
//   figure <TAB> name <TAB> text      a headline figure (data-figure)
//   panel <TAB> name <TAB> marks      a chart's data marks (bars, lines, dots)
//   error <TAB> message               an error the page raised
import {createServer} from "node:http";
import {readFile} from "node:fs/promises";
import {extname, join, normalize} from "node:path";
import {chromium} from "playwright-core";

const [dist, png] = process.argv.slice(2);
const types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
  ".png": "image/png", ".svg": "image/svg+xml", ".woff2": "font/woff2"};
const server = createServer(async (req, res) => {
  let path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (path.endsWith("/")) path += "index.html";
  try {
    const body = await readFile(join(dist, path));
    res.writeHead(200, {"content-type": types[extname(path)] ?? "application/octet-stream"}).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox"]});
try {
  const page = await browser.newPage({viewport: {width: 1400, height: 900}});
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && !/^Failed to load resource/.test(m.text()) && errors.push(m.text()));
  page.on("response", (r) => r.status() >= 400 && !r.url().endsWith("/favicon.ico") && errors.push(`${r.status()} ${r.url()}`));
  await page.goto(url, {waitUntil: "load"});
  // every panel has drawn its chart (the page renders after loading its data)
  await page.waitForFunction(() => {
    const panels = [...document.querySelectorAll("[data-panel]")];
    return panels.length > 0 && panels.every((p) => p.querySelector("svg"));
  }, null, {timeout: 60000});
  const shown = await page.evaluate(() => ({
    figures: [...document.querySelectorAll("[data-figure]")].map((e) => [e.dataset.figure, e.textContent.trim()]),
    panels: [...document.querySelectorAll("[data-panel]")].map((p) => [p.dataset.panel,
      p.querySelectorAll(':is(g[aria-label="bar"], g[aria-label="rect"], g[aria-label="line"], g[aria-label="dot"], g[aria-label="arrow"]) > *').length])
  }));
  await page.screenshot({path: png, fullPage: true});
  for (const [name, text] of shown.figures) console.log(`figure\t${name}\t${text}`);
  for (const [name, marks] of shown.panels) console.log(`panel\t${name}\t${marks}`);
  for (const e of errors) console.log(`error\t${e.replace(/\s+/g, " ")}`);
} finally {
  await browser.close();
  server.close();
}
