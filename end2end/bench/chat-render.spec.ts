// Chat rendering in a long meeting: 5,000 messages pushed into one page, in batches of 100 by
// a second page speaking the protocol over its own WebSocket. Reports the time per message
// (send to rendered in the reader's list) for the first and last batches: it must stay flat,
// since the page keeps at most 1,000 lines. Prints lines for docs/BENCHMARKS.md.
import { test, expect } from '@playwright/test';
import { startServer } from '../tests/fixtures';

const TOTAL = 5000;
const BATCH = 100;

test('time per chat message stays flat over 5,000 messages', async ({ browser }) => {
  const server = await startServer(['--chat-burst', '1000000', '--chat-per-second', '1000000']);
  try {
    const reader = await (await browser.newContext()).newPage();
    await reader.goto(`${server.url}/r/long-meeting`);
    await reader.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
    await reader.getByLabel('Your name').fill('Reader');
    await reader.getByRole('button', { name: /^Join/ }).click();
    await expect(reader.getByTestId('chat')).toBeVisible();

    const sender = await (await browser.newContext()).newPage();
    await sender.goto(`${server.url}/`);
    await sender.evaluate(async (url) => {
      const ws = new WebSocket(url.replace('http', 'ws') + '/ws');
      await new Promise((resolve) => (ws.onopen = resolve));
      const joined = new Promise((resolve) => {
        ws.onmessage = (event) => {
          if (JSON.parse(event.data).type === 'joined') resolve(null);
        };
      });
      ws.send(JSON.stringify({ type: 'hello', version: 2 }));
      ws.send(JSON.stringify({ type: 'join', room: 'long-meeting', name: 'Bot' }));
      await joined;
      (window as any).sendBatch = (from: number, count: number) => {
        for (let i = from; i < from + count; i++) ws.send(JSON.stringify({ type: 'chat', text: `message ${i}` }));
      };
    }, server.url);

    const perMessage: number[] = [];
    for (let sent = 0; sent < TOTAL; sent += BATCH) {
      const last = sent + BATCH - 1;
      const started = Date.now();
      await sender.evaluate(([from, count]) => (window as any).sendBatch(from, count), [sent, BATCH]);
      await reader.waitForFunction(
        (text) => {
          const lines = document.querySelectorAll('[data-testid="chat"] li.message .text');
          return lines.length > 0 && lines[lines.length - 1].textContent === text;
        },
        `message ${last}`,
        { timeout: 60_000, polling: 'raf' },
      );
      perMessage.push((Date.now() - started) / BATCH);
    }
    const lines = await reader.locator('[data-testid="chat"] li').count();
    expect(lines).toBeLessThanOrEqual(1002);
    await expect(reader.getByTestId('earlier-hidden')).toBeVisible();

    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(perMessage.slice(0, 5));
    const lastFive = mean(perMessage.slice(-5));
    console.log(`chat rendering, ${TOTAL} messages in batches of ${BATCH}: first 500 ${first.toFixed(2)} ms/message, last 500 ${lastFive.toFixed(2)} ms/message, lines kept ${lines}`);
  } finally {
    await server.stop();
  }
});
