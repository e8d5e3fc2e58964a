// Calls through the server's forwarding unit: one RTCPeerConnection per page whatever the
// call's size, video that really decodes, and the switch between browser-to-browser and
// through-the-server media as a call grows past --mesh-max and shrinks back.
import { Page } from '@playwright/test';
import { speechWav, silenceWav, launchWithMicrophone } from './audio';
import { test, expect, startServer } from './fixtures';
import { joinCall, remoteTile, expectVideoFlowing, framesDecoded, inboundVideoStat } from './call-helpers';

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

    // Eve leaves: her tile is gone everywhere within 2 seconds, and the rest carry on. The
    // pages note the moments themselves (one wall clock on this machine): Playwright's own
    // round trips to five busy browsers would otherwise be most of what is measured.
    const stay = ['Ann', 'Bob', 'Cat', 'Dan'];
    for (const name of stay) {
      await pages[name].evaluate(() => {
        const gone = () => !document.querySelector('[data-testid="remote-tile"][data-name="Eve"]');
        const observer = new MutationObserver(() => {
          if (!gone()) return;
          (window as any).__eveGoneAt = Date.now();
          observer.disconnect();
        });
        observer.observe(document.body, { childList: true, subtree: true });
      });
    }
    const leave = pages.Eve.getByRole('button', { name: 'Leave' });
    await leave.evaluate((button) =>
      button.addEventListener('click', () => ((window as any).__leftAt = Date.now()), { capture: true }),
    );
    await leave.click();
    const left: number = await pages.Eve.evaluate(() => (window as any).__leftAt);
    for (const name of stay) {
      await expect(remoteTile(pages[name], 'Eve')).toHaveCount(0);
      const goneAt: number = await pages[name].evaluate(() => (window as any).__eveGoneAt);
      expect(goneAt - left, `Eve's tile gone from ${name}'s page`).toBeLessThan(2_000);
    }
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

/** Width of the frames the page decodes from `name`'s camera (getStats), 0 before any. */
async function frameWidth(page: Page, name: string): Promise<number> {
  return Math.max(0, await inboundVideoStat(page, name, 'frameWidth'));
}

test('a pinned tile gets a sharper picture than the thumbnails, a hidden tile none, and a failed connection is replaced', async ({
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(150_000);
  const server = await startServer(['--media', 'sfu', '--media-addr', '127.0.0.1:0']);
  try {
    const names = ['Ann', 'Bob', 'Cat', 'Dan'];
    const pages: Record<string, Page> = {};
    for (const name of names) pages[name] = await joinCall(await newContext(), server, 'layers', name, consoleErrors);
    const ann = pages.Ann;
    for (const other of ['Bob', 'Cat', 'Dan']) await expectVideoFlowing(ann, other);

    // Ann pins Bob: his tile fills the stage, the others become thumbnails.
    await remoteTile(ann, 'Bob').hover();
    await remoteTile(ann, 'Bob').getByTestId('pin').click();
    await expect(ann.getByTestId('tiles')).toHaveAttribute('data-layout', 'pinned');
    await expect
      .poll(async () => (await frameWidth(ann, 'Bob')) - Math.max(await frameWidth(ann, 'Cat'), await frameWidth(ann, 'Dan')), {
        message: 'Bob, pinned, arrives wider than the thumbnails',
        timeout: 30_000,
      })
      .toBeGreaterThan(0);

    // Unpinned, Bob is a thumbnail like the others again.
    await remoteTile(ann, 'Bob').getByTestId('pin').click();
    await expect
      .poll(async () => (await frameWidth(ann, 'Bob')) - (await frameWidth(ann, 'Cat')), { timeout: 30_000 })
      .toBe(0);

    // Dan's tile disappears from Ann's screen: the server stops sending his video, and
    // starts again when the tile is back.
    await remoteTile(ann, 'Dan').evaluate((tile: HTMLElement) => (tile.style.display = 'none'));
    await ann.waitForTimeout(2_000);
    const paused = await framesDecoded(ann, 'Dan');
    await ann.waitForTimeout(2_000);
    expect(await framesDecoded(ann, 'Dan')).toBe(paused);
    await remoteTile(ann, 'Dan').evaluate((tile: HTMLElement) => (tile.style.display = ''));
    await expectVideoFlowing(ann, 'Dan');

    // Bob shares his screen: through the server it is one stream at full size (no simulcast
    // layers), shown large on the others' pages.
    await pages.Bob.getByRole('button', { name: 'Share screen' }).click();
    for (const page of [ann, pages.Cat]) {
      const screen = page.locator('[data-testid="screen-tile"][data-name="Bob"]');
      await expect(screen).toBeVisible({ timeout: 15_000 });
      await expect
        .poll(() => screen.locator('video').evaluate((v: HTMLVideoElement) => v.videoWidth), { timeout: 20_000 })
        .toBe(1280);
      const first = await framesDecoded(page, 'Bob', 'screen-tile');
      await expect.poll(() => framesDecoded(page, 'Bob', 'screen-tile')).toBeGreaterThan(first);
    }
    await pages.Bob.getByRole('button', { name: 'Stop sharing' }).click();
    await expect(ann.locator('[data-testid="screen-tile"]')).toHaveCount(0);

    // Ann's browser reports her connection to the server failed (as after a network change):
    // the page opens a new one, the server replaces the old, and video flows again.
    const before = await ann.evaluate(() => (window as any).__peerConnections.length);
    await ann.evaluate(() => {
      const pcs = (window as any).__peerConnections as RTCPeerConnection[];
      const pc = pcs.filter((p) => p.connectionState !== 'closed').pop()!;
      Object.defineProperty(pc, 'connectionState', { get: () => 'failed' });
      pc.dispatchEvent(new Event('connectionstatechange'));
    });
    await expect
      .poll(() => ann.evaluate(() => (window as any).__peerConnections.length), { timeout: 10_000 })
      .toBe(before + 1);
    for (const other of ['Bob', 'Cat', 'Dan']) await expectVideoFlowing(ann, other);
    await expectVideoFlowing(pages.Bob, 'Ann');
  } finally {
    await server.stop();
  }
});

test('through the server, the server names the active speaker for every page', async () => {
  test.setTimeout(120_000);
  const server = await startServer(['--media', 'sfu', '--media-addr', '127.0.0.1:0']);
  const speaking = await launchWithMicrophone(speechWav());
  const silent = await launchWithMicrophone(silenceWav());
  try {
    const errors: string[] = [];
    const ann = await joinCall(await speaking.newContext(), server, 'voices', 'Ann', errors);
    const bob = await joinCall(await silent.newContext(), server, 'voices', 'Bob', errors);
    const cat = await joinCall(await silent.newContext(), server, 'voices', 'Cat', errors);
    // The pages no longer measure each other's sound through the server: the mark comes
    // from the server's active_speaker.
    for (const page of [bob, cat]) {
      await expect(remoteTile(page, 'Ann')).toHaveAttribute('data-speaking', 'true', { timeout: 20_000 });
      await expect(page.getByTestId('self-tile')).toHaveAttribute('data-speaking', 'false');
    }
    await expect(ann.getByTestId('self-tile')).toHaveAttribute('data-speaking', 'true');
    await expect(remoteTile(ann, 'Bob')).toHaveAttribute('data-speaking', 'false');
    expect(errors).toEqual([]);
  } finally {
    await speaking.close();
    await silent.close();
    await server.stop();
  }
});
