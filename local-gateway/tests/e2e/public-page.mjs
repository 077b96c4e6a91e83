// Opens the built public page from disk in headless Chromium with JavaScript switched off (the
// page must read without it) and reports what rendered, as one JSON line.
// Usage: node public-page.mjs DIR SCREENSHOT.png   (run by tests/public_page.rs)
// playwright-core comes from .test-deps (make test-deps); Chromium is Debian's.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch } from './browser.mjs';

const [dir, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  // Every URL the page asks for: it must load nothing from elsewhere.
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));

  await page.goto(pathToFileURL(path.join(dir, 'index.html')).href, { waitUntil: 'load' });
  const index = await page.evaluate(() => ({
    title: document.title,
    heading: document.querySelector('h1')?.textContent,
    buttons: [...document.querySelectorAll('.hero a')].map((a) => [a.textContent, a.getAttribute('href')]),
    principles: document.querySelectorAll('#principles .card').length,
    specRows: document.querySelectorAll('#specification tr').length,
    health: [...document.querySelectorAll('#health tbody tr')].map((tr) =>
      [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())),
    // The stylesheet applied: the main button is filled with the accent colour.
    buttonBackground: getComputedStyle(document.querySelector('.hero .button')).backgroundColor,
    scripts: document.querySelectorAll('script').length,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.goto(pathToFileURL(path.join(dir, 'evolution.html')).href, { waitUntil: 'load' });
  const evolution = await page.evaluate(() => ({
    title: document.title,
    chapters: [...document.querySelectorAll('.chapter h2')].map((h) => h.textContent),
    dates: [...document.querySelectorAll('.timeline time')].map((t) => t.getAttribute('datetime')),
    listItems: document.querySelectorAll('.timeline li li').length,
    scripts: document.querySelectorAll('script').length,
  }));
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-evolution.png'), fullPage: true });
  console.log(JSON.stringify({ index, evolution, requests, failed }));
} finally {
  await browser.close();
}
