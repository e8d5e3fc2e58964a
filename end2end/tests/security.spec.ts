// Security in a real browser: the page works under its Content-Security-Policy (hydration,
// chat, a call) without a single violation, and long histories arrive in pages.
import { test, expect, startServer } from './fixtures';
import { joinCall, expectVideoFlowing } from './call-helpers';
import type { BrowserContext, Page } from './fixtures';

/** Collects the CSP violations each page reports, from before its first script runs. */
async function recordViolations(target: Page | BrowserContext): Promise<void> {
  await target.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (event) => {
      seen.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
}

async function violations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations);
}

test('the meeting hydrates, chats and calls under its content security policy', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(90_000);
  const response = await fetch(`${server.url}/r/csp`);
  const policy = response.headers.get('content-security-policy') ?? '';
  expect(policy).toContain("script-src 'self' 'nonce-");
  expect(policy).toContain("frame-ancestors 'none'");
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');

  const pages: Page[] = [];
  for (const name of ['Ann', 'Bob']) {
    // joinCall opens the page itself, so the recording goes on the whole context.
    const context = await newContext();
    await recordViolations(context);
    pages.push(await joinCall(context, server, 'csp', name, consoleErrors));
  }
  const [ann, bob] = pages;
  await expectVideoFlowing(ann, 'Bob');
  await expectVideoFlowing(bob, 'Ann');
  await ann.getByLabel('Message').fill('under a policy');
  await ann.getByLabel('Message').press('Enter');
  await expect(bob.locator('.message .text')).toHaveText(['under a policy']);
  for (const page of pages) expect(await violations(page)).toEqual([]);
});

test('a long history arrives in pages the late joiner asks for', async ({ newContext, consoleErrors }) => {
  test.setTimeout(90_000);
  // About three messages per page.
  const server = await startServer(['--max-replay-bytes', '600', '--chat-burst', '100', '--chat-per-second', '100']);
  try {
    const annContext = await newContext();
    const ann = await annContext.newPage();
    await recordViolations(ann);
    await ann.goto(`${server.url}/r/paged-history`);
    await ann.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
    await ann.getByLabel('Your name').fill('Ann');
    await ann.getByRole('button', { name: 'Join', exact: true }).click();
    await expect(ann.getByTestId('participant-count')).toBeVisible();
    const said = Array.from({ length: 12 }, (_, i) => `message ${i + 1} ${'.'.repeat(80)}`);
    for (const text of said) {
      await ann.getByLabel('Message').fill(text);
      await ann.getByLabel('Message').press('Enter');
    }
    await expect(ann.locator('.message .text')).toHaveCount(12);

    const bob = await (await newContext()).newPage();
    bob.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(`Bob: ${msg.text()}`);
    });
    await bob.goto(`${server.url}/r/paged-history`);
    await bob.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
    await bob.getByLabel('Your name').fill('Bob');
    await bob.getByRole('button', { name: 'Join', exact: true }).click();
    await expect(bob.getByTestId('participant-count')).toBeVisible();
    // Only the newest few came with the join.
    const first = await bob.locator('.message .text').count();
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(12);
    await expect(bob.locator('.message .text').last()).toHaveText(said[11]);
    // Each click brings an older page, until there is none; then everything is in order.
    const loadEarlier = bob.getByTestId('load-earlier');
    while (await loadEarlier.isVisible()) {
      const before = await bob.locator('.message .text').count();
      await loadEarlier.click();
      await expect.poll(() => bob.locator('.message .text').count()).toBeGreaterThan(before);
      // The server allows two pages a second.
      await bob.waitForTimeout(500);
    }
    await expect(bob.locator('.message .text')).toHaveText(said);
    await expect(loadEarlier).toHaveCount(0);
  } finally {
    await server.stop();
  }
});
