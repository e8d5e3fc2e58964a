// Calls through the server's forwarding unit: one RTCPeerConnection per page whatever the
// call's size, video that really decodes, and the switch between browser-to-browser and
// through-the-server media as a call grows past --mesh-max and shrinks back.
import { Page } from '@playwright/test';
import { test, expect, startServer } from './fixtures';
import { joinCall, remoteTile, expectVideoFlowing } from './call-helpers';

const SFU = ['--media', 'auto', '--mesh-max', '2', '--media-addr', '127.0.0.1:0'];

/** RTCPeerConnections of the page that are not closed. */
async function openConnections(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      ((window as any).__peerConnections as RTCPeerConnection[]).filter(
        (pc) => pc.connectionState !== 'closed' && pc.signalingState !== 'closed',
      ).length,
  );
}

test('five people through the server: one connection each, and everyone decodes the four others', async ({
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(180_000);
  const server = await startServer(SFU);
  try {
    const names = ['Ann', 'Bob', 'Cat', 'Dan', 'Eve'];
    const pages: Record<string, Page> = {};
    for (const name of names) pages[name] = await joinCall(await newContext(), server, 'big', name, consoleErrors);
    for (const [me, page] of Object.entries(pages)) {
      await expect(page.getByTestId('remote-tile')).toHaveCount(4);
      for (const other of names.filter((n) => n !== me)) await expectVideoFlowing(page, other);
      await expect.poll(() => openConnections(page), { message: `${me}'s open connections` }).toBe(1);
    }

    // Eve leaves: her tile is gone everywhere within 2 seconds, and the rest carry on.
    const left = Date.now();
    await pages.Eve.getByRole('button', { name: 'Leave' }).click();
    for (const name of ['Ann', 'Bob', 'Cat', 'Dan']) {
      await expect(remoteTile(pages[name], 'Eve')).toHaveCount(0, { timeout: 2_000 });
    }
    expect(Date.now() - left).toBeLessThan(2_000);
    await expectVideoFlowing(pages.Ann, 'Dan');
    await expectVideoFlowing(pages.Dan, 'Ann');
  } finally {
    await server.stop();
  }
});

test('a call switches to the server at three people and back at two, video flowing throughout', async ({
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(120_000);
  const server = await startServer(SFU);
  try {
    const ann = await joinCall(await newContext(), server, 'switch', 'Ann', consoleErrors);
    const bob = await joinCall(await newContext(), server, 'switch', 'Bob', consoleErrors);
    // Two people: browser to browser.
    await expectVideoFlowing(ann, 'Bob');
    await expectVideoFlowing(bob, 'Ann');

    // A third joins: all three go through the server, one connection each.
    const cat = await joinCall(await newContext(), server, 'switch', 'Cat', consoleErrors);
    const pages = { Ann: ann, Bob: bob, Cat: cat };
    for (const [me, page] of Object.entries(pages)) {
      for (const other of Object.keys(pages).filter((n) => n !== me)) await expectVideoFlowing(page, other);
      await expect.poll(() => openConnections(page)).toBe(1);
    }

    // Cat leaves: Ann and Bob go back to browser to browser and still see each other.
    await cat.getByRole('button', { name: 'Leave' }).click();
    await expect(remoteTile(ann, 'Cat')).toHaveCount(0);
    await expectVideoFlowing(ann, 'Bob');
    await expectVideoFlowing(bob, 'Ann');
    for (const page of [ann, bob]) await expect.poll(() => openConnections(page)).toBe(1);
  } finally {
    await server.stop();
  }
});
