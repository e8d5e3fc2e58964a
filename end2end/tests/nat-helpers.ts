// Helpers for calls between simulated homes (end2end/natsim): the topology, Chromium inside a
// home, and a two-person call whose connection time and ICE path are measured. Shared by the
// NAT tests and the relay benchmark; root only.
import { chromium, Browser, BrowserContext, Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import chromiumArgs from '../chromium-args.json';
import { expect, RoomServer } from './fixtures';
import { joinCall, remoteTile, expectVideoFlowing } from './call-helpers';

export const natsim = path.join(__dirname, '..', 'natsim');
export const PUBLIC_IP = '203.0.113.10';
/** Servers of the NAT tests listen on these ports of the public network, one per setup. */
export const PORTS = [3000, 3001, 3002, 3003, 3004];

export function topo(...args: string[]): void {
  execFileSync(path.join(natsim, 'topo.sh'), args, { stdio: 'inherit' });
}

/** Chromium inside home 1 or 2 (or on the public network), trusting the servers'
 * plain-http origins for camera access. */
export async function homeBrowser(home: 1 | 2 | 'pub'): Promise<Browser> {
  const homeDir = fs.mkdtempSync(path.join(os.tmpdir(), `room-home${home}-`));
  const wrapper = home === 'pub' ? 'chromium-pub.sh' : `chromium-home${home}.sh`;
  const browser = await chromium.launch({
    executablePath: path.join(natsim, wrapper),
    args: [
      ...chromiumArgs.filter((arg) => arg !== '--allow-loopback-in-peer-connection'),
      `--unsafely-treat-insecure-origin-as-secure=${PORTS.map((port) => `http://${PUBLIC_IP}:${port}`).join(',')}`,
    ],
    env: { ...process.env, HOME: homeDir },
  });
  return browser;
}

/** The selected ICE path of the page's open connection: local candidate type and, for a
 * relayed one, how the browser reaches the relay. */
export async function selectedPath(page: Page): Promise<string> {
  return page.evaluate(async () => {
    for (const pc of (window as any).__peerConnections as RTCPeerConnection[]) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      let pairId = '';
      stats.forEach((s: any) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      const pair: any = pairId ? stats.get(pairId) : undefined;
      const local: any = pair ? stats.get(pair.localCandidateId) : undefined;
      const remote: any = pair ? stats.get(pair.remoteCandidateId) : undefined;
      if (!local || !remote) continue;
      const via = local.candidateType === 'relay' ? `/${local.relayProtocol}` : '';
      return `${local.candidateType}${via}->${remote.candidateType}`;
    }
    return 'none';
  });
}

export async function linkConnected(page: Page, name: string): Promise<void> {
  await page.waitForFunction(
    (name) =>
      document
        .querySelector(`[data-testid="remote-tile"][data-name="${CSS.escape(name)}"]`)
        ?.getAttribute('data-link') === 'connected',
    name,
    { timeout: 30_000 },
  );
}

/** Ann in home 1 and Bob in home 2 call; returns the time from Bob joining to both sides
 * connected, and each side's path. */
export async function callBetweenHomes(
  server: RoomServer,
  browsers: Browser[],
  room: string,
  errors: string[],
) {
  const contexts: BrowserContext[] = [
    await browsers[0].newContext(),
    await browsers[1].newContext(),
  ];
  try {
    const ann = await joinCall(contexts[0], server, room, 'Ann', errors);
    const bob = await joinCall(contexts[1], server, room, 'Bob', errors);
    const joined = Date.now();
    await Promise.all([linkConnected(ann, 'Bob'), linkConnected(bob, 'Ann')]);
    const connectedMs = Date.now() - joined;
    await expectVideoFlowing(ann, 'Bob');
    await expectVideoFlowing(bob, 'Ann');
    await expect(remoteTile(ann, 'Bob')).toHaveAttribute('data-link', 'connected');
    const paths = { ann: await selectedPath(ann), bob: await selectedPath(bob) };
    console.log(`${room}: connected ${connectedMs} ms after Bob joined; Ann ${paths.ann}, Bob ${paths.bob}`);
    return { connectedMs, paths };
  } finally {
    for (const context of contexts) await context.close();
  }
}

