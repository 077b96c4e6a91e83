// Loads the status page in headless Chromium and reports what rendered, as one JSON line.
// Usage: node status-page.mjs URL SCREENSHOT.png   (run by tests/status_page.rs)
// playwright-core comes from .test-deps (make test-deps); Chromium is Debian's.
import { launch } from './browser.mjs';

const [url, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const resp = await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#runs-chart svg', { timeout: 10000 });
  const report = await page.evaluate(() => ({
    title: document.title,
    functionRows: [...document.querySelectorAll('#functions tbody tr')].map((tr) => tr.dataset.function),
    runRows: document.querySelectorAll('#runs tbody tr').length,
    firstRun: [...document.querySelectorAll('#runs tbody tr:first-child td')].map((td) => td.textContent),
    charts: [...document.querySelectorAll('.chart')].map((c) => ({
      id: c.id,
      heading: c.previousElementSibling ? c.previousElementSibling.textContent : '',
      width: c.querySelector('svg') ? c.querySelector('svg').getBoundingClientRect().width : 0,
      series: [...c.querySelectorAll('svg polyline')].map((p) => [p.dataset.series,
        c.querySelectorAll('svg circle[data-series="' + p.dataset.series + '"]').length]),
      legend: c.nextElementSibling ? c.nextElementSibling.textContent : '',
    })),
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ status: resp.status(), errors, ...report }));
} finally {
  await browser.close();
}
