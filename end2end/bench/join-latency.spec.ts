// Join-to-first-frame: from the click on "Join" to the first frame of the other participant's
// video presented on screen (requestVideoFrameCallback), two participants on loopback,
// browser to browser and through the server's forwarding unit.
// Median of 5 joins each. Prints lines for docs/BENCHMARKS.md.
import { test, expect } from '@playwright/test';
import { startServer } from '../tests/fixtures';

const JOINS = 5;

for (const [label, flags] of [
  ['browser to browser', [] as string[]],
  ['through the server', ['--media', 'sfu', '--media-addr', '127.0.0.1:0']],
] as const) {
  test(`join to first decoded remote frame, ${label}`, async ({ browser }) => {
    const server = await startServer([...flags]);
    try {
      const hostContext = await browser.newContext();
      const host = await hostContext.newPage();
      await host.goto(`${server.url}/r/latency`);
      await host.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
      await host.getByLabel('Your name').fill('Host');
      await host.getByRole('button', { name: 'Join', exact: true }).click();
      await expect(host.getByTestId('self-tile')).toBeVisible();

      const samples: number[] = [];
      for (let i = 0; i < JOINS; i++) {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.addInitScript(() => {
          const w = window as any;
          document.addEventListener(
            'click',
            (e) => {
              if ((e.target as HTMLElement).closest('button')?.textContent?.trim() === 'Join') w.__joinAt = performance.now();
            },
            true,
          );
          new MutationObserver(() => {
            const video = document.querySelector('[data-testid="remote-tile"] video') as HTMLVideoElement | null;
            if (video && !w.__watching) {
              w.__watching = true;
              video.requestVideoFrameCallback(() => (w.__firstFrameAt = performance.now()));
            }
          }).observe(document, { childList: true, subtree: true });
        });
        await page.goto(`${server.url}/r/latency`);
        await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
        // Like a person: the preview is up before they press Join.
        await expect.poll(() => page.getByTestId('preview').evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
        await page.getByLabel('Your name').fill(`Guest ${i}`);
        await page.getByRole('button', { name: 'Join', exact: true }).click();
        await page.waitForFunction(() => (window as any).__firstFrameAt !== undefined, null, { timeout: 30_000 });
        const ms = await page.evaluate(() => (window as any).__firstFrameAt - (window as any).__joinAt);
        samples.push(ms);
        console.log(`join ${i + 1}: ${ms.toFixed(0)} ms`);
        await context.close();
        await expect(host.getByTestId('remote-tile')).toHaveCount(0);
      }
      const sorted = [...samples].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      console.log(`join-to-first-frame ${label} over ${JOINS} joins: median ${median.toFixed(0)} ms, min ${sorted[0].toFixed(0)} ms, max ${sorted[sorted.length - 1].toFixed(0)} ms`);
      await hostContext.close();
    } finally {
      await server.stop();
    }
  });
}
