// Helpers for call tests: find a remote tile's RTCPeerConnection and prove that its video is
// really decoded, not just that an element exists.
import { BrowserContext, Page, expect } from '@playwright/test';
import { refusedByStoppedServer, rememberPanelsOpen, type RoomServer } from './fixtures';

/**
 * Records every RTCPeerConnection the page creates (the app's WASM constructs them through
 * the global constructor), so tests can read their stats. Install before the page loads.
 */
export async function recordPeerConnections(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const Original = window.RTCPeerConnection;
    const all: RTCPeerConnection[] = [];
    (window as any).__peerConnections = all;
    class Recorded extends Original {
      constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
        super(...args);
        all.push(this);
      }
    }
    (window as any).RTCPeerConnection = Recorded;
  });
}

export function remoteTile(page: Page, name: string) {
  return page.locator(`[data-testid="remote-tile"][data-name="${name}"]`);
}

/** A number from the inbound video stats of the track shown in `name`'s tile (`tile` is
 * 'remote-tile' for their camera, 'screen-tile' for their shared screen); -1 while the tile
 * shows no track of an open connection. Read through the track's own receiver: a call that
 * is switching connections may close or renegotiate the old one mid-read, and
 * `pc.getStats(track)` then throws instead of saying "not yet". */
export async function inboundVideoStat(
  page: Page,
  name: string,
  field: 'framesDecoded' | 'frameWidth' | 'packetsReceived',
  tile = 'remote-tile',
): Promise<number> {
  return page.evaluate(async ([name, field, tile]) => {
    const element = document.querySelector(`[data-testid="${tile}"][data-name="${CSS.escape(name)}"]`);
    const video = element?.querySelector('video') as HTMLVideoElement | null;
    const track = (video?.srcObject as MediaStream | null)?.getVideoTracks()[0];
    if (!track) return -1;
    for (const pc of (window as any).__peerConnections as RTCPeerConnection[]) {
      // signalingState too: a test may have overridden connectionState.
      if (pc.connectionState === 'closed' || pc.signalingState === 'closed') continue;
      const receiver = pc.getReceivers().find((r) => r.track?.id === track.id);
      if (!receiver) continue;
      let value = -1;
      try {
        (await receiver.getStats()).forEach((s: any) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') value = Math.max(value, s[field] ?? 0);
        });
      } catch {
        return -1;
      }
      return value;
    }
    return -1;
  }, [name, field, tile] as const);
}

/** Video frames decoded so far for the track shown in `name`'s tile (see [inboundVideoStat]). */
export function framesDecoded(page: Page, name: string, tile = 'remote-tile'): Promise<number> {
  return inboundVideoStat(page, name, 'framesDecoded', tile);
}

/** The remote tile plays real video: it has a size and the decoder keeps producing frames. */
export async function expectVideoFlowing(page: Page, name: string): Promise<void> {
  const tile = remoteTile(page, name);
  await expect(tile).toBeVisible();
  await expect
    .poll(() => tile.locator('video').evaluate((v: HTMLVideoElement) => v.videoWidth), {
      message: `video from ${name} has a size`,
      timeout: 20_000,
    })
    .toBeGreaterThan(0);
  // Polled, not read once: while a call switches between browser to browser and through the
  // server, the tile briefly still shows the closed connection's last frame.
  await expect
    .poll(() => framesDecoded(page, name), { message: `frames from ${name}`, timeout: 20_000 })
    .toBeGreaterThan(0);
  const first = await framesDecoded(page, name);
  await expect
    .poll(() => framesDecoded(page, name), { message: `frames from ${name} keep coming`, timeout: 10_000 })
    .toBeGreaterThan(first);
}

/** Labels of the video tracks this page sends on its open connections. */
export async function sentVideoTrack(page: Page): Promise<string> {
  return page.evaluate(() =>
    ((window as any).__peerConnections as RTCPeerConnection[])
      .filter((pc) => pc.connectionState !== 'closed')
      .flatMap((pc) => pc.getSenders())
      .filter((s) => s.track?.kind === 'video')
      .map((s) => `${s.track!.label}:${s.track!.readyState}`)
      .join(','),
  );
}

/**
 * Opens the room page, waits for the camera preview as a person would, and joins the call.
 * Console errors and uncaught exceptions go to `errors`, except those matching `ignore`.
 */
export async function joinCall(
  context: BrowserContext,
  server: RoomServer,
  room: string,
  name: string,
  errors: string[],
  ignore?: RegExp,
): Promise<Page> {
  await rememberPanelsOpen(context);
  const page = await context.newPage();
  await recordPeerConnections(page);
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' && !(ignore && ignore.test(text)) && !refusedByStoppedServer(text)) {
      errors.push(`${name}: ${text}`);
    }
  });
  page.on('pageerror', (err) => errors.push(`${name}: ${err.message}`));
  await page.goto(`${server.url}/r/${room}`);
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await expect
    .poll(() => page.getByTestId('preview').evaluate((v: HTMLVideoElement) => v.videoWidth))
    .toBeGreaterThan(0);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(page.getByTestId('self-tile')).toBeVisible();
  return page;
}
