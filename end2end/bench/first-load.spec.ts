// First load of the meeting page over a modest link (10 Mbit/s down and up, 40 ms added to
// every request, by Chromium's network emulation): from navigation to hydrated (the page's
// code runs) and to interactive (a click on Join takes the person into the meeting), and the
// bytes moved, on a first visit (empty cache) and a second (hashed files from the cache).
// Median of 3 rounds. Prints lines for docs/BENCHMARKS.md.
import { test, expect } from '@playwright/test';
import { startServer } from '../tests/fixtures';

const ROUNDS = 3;

test('first and second visit of a meeting page over 10 Mbit/s and 40 ms', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = await startServer();
  const results: Record<string, { hydrated: number[]; interactive: number[]; bytes: number[] }> = {
    'first visit': { hydrated: [], interactive: [], bytes: [] },
    'second visit': { hydrated: [], interactive: [], bytes: [] },
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 40,
        downloadThroughput: (10_000_000 / 8),
        uploadThroughput: (10_000_000 / 8),
      });
      let bytes = 0;
      cdp.on('Network.loadingFinished', (event) => (bytes += event.encodedDataLength));
      for (const visit of ['first visit', 'second visit']) {
        bytes = 0;
        const started = Date.now();
        await page.goto(`${server.url}/r/first-load-${round}`);
        await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
        const hydrated = Date.now() - started;
        await page.getByLabel('Your name').fill(`Reader ${round}`);
        await page.getByRole('button', { name: 'Join', exact: true }).click();
        await expect(page.getByTestId('participant-count')).toBeVisible();
        const interactive = Date.now() - started;
        results[visit].hydrated.push(hydrated);
        results[visit].interactive.push(interactive);
        results[visit].bytes.push(bytes);
        // Leave, so the next visit joins afresh.
        await page.getByRole('button', { name: 'Leave' }).click();
      }
      await context.close();
    }
  } finally {
    await server.stop();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  for (const [visit, r] of Object.entries(results)) {
    console.log(
      `| ${visit} | ${median(r.hydrated)} ms | ${median(r.interactive)} ms | ${(median(r.bytes) / 1024).toFixed(0)} KiB |`,
    );
  }
});
