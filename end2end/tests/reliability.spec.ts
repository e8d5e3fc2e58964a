// Reliability across real pages: the server is killed and restarted, a page goes offline;
// everyone shows "reconnecting", comes back, and chat (and the call) carries on with nothing
// missing and nothing twice.
import { test, expect, startServer, BrowserContext, Page, RoomServer } from './fixtures';
import { joinCall, expectVideoFlowing } from './call-helpers';

// A killed server makes the browser log failed WebSocket attempts while it reconnects; those
// are the point of these tests, not errors of the page.
const reconnectNoise = /WebSocket connection to .* failed/;

function join(context: BrowserContext, server: RoomServer, room: string, name: string, errors: string[]): Promise<Page> {
  return joinCall(context, server, room, name, errors, reconnectNoise);
}


async function say(page: Page, text: string) {
  if (await page.getByRole('button', { name: 'Open chat' }).isVisible()) {
    await page.getByRole('button', { name: 'Open chat' }).click();
  }
  await page.getByLabel('Message').fill(text);
  await page.getByLabel('Message').press('Enter');
}

const messages = (page: Page) => page.locator('.message .text');

test('a killed and restarted server: both pages reconnect, chat and the call carry on, nothing twice', async ({
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(120_000);
  let server = await startServer();
  try {
    const ann = await join(await newContext(), server, 'restart', 'Ann', consoleErrors);
    const bob = await join(await newContext(), server, 'restart', 'Bob', consoleErrors);
    await expectVideoFlowing(ann, 'Bob');
    await say(ann, 'before the crash');
    await say(bob, 'me too');
    for (const page of [ann, bob]) await expect(messages(page)).toHaveText(['before the crash', 'me too']);

    await server.kill();
    for (const page of [ann, bob]) await expect(page.getByTestId('reconnecting')).toBeVisible();

    server = await startServer([], { addr: server.addr, dataDir: server.dataDir });
    for (const page of [ann, bob]) {
      await expect(page.getByTestId('reconnecting')).toBeHidden({ timeout: 20_000 });
      await expect(page.getByTestId('chat')).toContainText('Reconnected');
    }
    await say(ann, 'after the restart');
    await say(bob, 'loud and clear');
    const all = ['before the crash', 'me too', 'after the restart', 'loud and clear'];
    for (const page of [ann, bob]) {
      await expect(messages(page)).toHaveText(all);
      // Whoever reconnected first is listed first.
      const names = page.getByTestId('people').locator('.person-name');
      await expect(names).toHaveCount(2);
      expect((await names.allTextContents()).sort()).toEqual(['Ann', 'Bob']);
    }
    // The call is set up again under the new ids.
    await expectVideoFlowing(ann, 'Bob');
    await expectVideoFlowing(bob, 'Ann');
    // A newcomer reads the history the restarted server loaded from disk.
    const cat = await join(await newContext(), server, 'restart', 'Cat', consoleErrors);
    await expect(messages(cat)).toHaveText(all);
  } finally {
    await server.stop();
  }
});

test('a page that goes offline for five seconds comes back with what it missed', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const annContext = await newContext();
  const ann = await join(annContext, server, 'offline', 'Ann', consoleErrors);
  const bob = await join(await newContext(), server, 'offline', 'Bob', consoleErrors);
  await say(ann, 'first');
  await expect(messages(bob)).toHaveText(['first']);

  await annContext.setOffline(true);
  await say(bob, 'while you were away 1');
  await say(bob, 'while you were away 2');
  await ann.waitForTimeout(5_000);
  await annContext.setOffline(false);

  const all = ['first', 'while you were away 1', 'while you were away 2'];
  await expect(messages(ann)).toHaveText(all, { timeout: 30_000 });
  await expect(ann.getByTestId('reconnecting')).toBeHidden({ timeout: 30_000 });
  await say(ann, 'back');
  await expect(messages(bob)).toHaveText([...all, 'back']);
  await expect(messages(ann)).toHaveText([...all, 'back']);
  // Bob never saw Ann leave and join again.
  await expect(bob.getByTestId('chat')).not.toContainText('Ann left');
  await expect(bob.getByTestId('people').locator('.person-name')).toHaveText(['Ann', 'Bob']);
});
