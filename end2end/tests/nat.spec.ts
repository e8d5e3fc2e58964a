// Calls between two homes behind simulated NATs and firewalls (end2end/natsim: network
// namespaces, iptables; root only, as CI runs): Room's built-in TURN relay carries what
// direct paths cannot, over UDP or, when a home blocks UDP, over TCP.
import { Browser, BrowserContext, Page } from '@playwright/test';

import { test, expect, startServer, RoomServer } from './fixtures';
import { joinCall, remoteTile, expectVideoFlowing } from './call-helpers';
import { PUBLIC_IP, topo, homeBrowser as launchHomeBrowser, selectedPath, callBetweenHomes } from './nat-helpers';

const isRoot = process.getuid?.() === 0;
// Outside CI a developer without root skips these; CI runs as root and must run them.
test.skip(!isRoot && !process.env.CI, 'the NAT tests need root (network namespaces, iptables)');
test.describe.configure({ mode: 'serial' });

let server: RoomServer;
const browsers: Browser[] = [];

async function homeBrowser(home: 1 | 2 | 'pub'): Promise<Browser> {
  const browser = await launchHomeBrowser(home);
  browsers.push(browser);
  return browser;
}

test.beforeAll(async () => {
  topo('down');
  topo('up');
  server = await startServer(
    ['--public-ip', PUBLIC_IP, '--media', 'mesh', '--media-addr', `${PUBLIC_IP}:0`],
    { addr: `${PUBLIC_IP}:3000`, netns: 'np-pub' },
  );
  await homeBrowser(1);
  await homeBrowser(2);
});

test.afterAll(async () => {
  for (const browser of browsers) await browser.close();
  await server?.stop();
  topo('down');
});

test('a cone NAT and a symmetric NAT connect through the built-in relay', async ({ consoleErrors }) => {
  test.setTimeout(120_000);
  topo('nat1', 'cone');
  topo('nat2', 'symmetric');
  const { paths } = await callBetweenHomes(server, browsers, 'cone-symmetric', consoleErrors);
  // A symmetric NAT leaves no direct path: at least one side goes through the relay.
  expect(`${paths.ann} ${paths.bob}`).toContain('relay');
});

test('two symmetric NATs connect through the built-in relay', async ({ consoleErrors }) => {
  test.setTimeout(120_000);
  topo('nat1', 'symmetric');
  topo('nat2', 'symmetric');
  const { paths } = await callBetweenHomes(server, browsers, 'symmetric-symmetric', consoleErrors);
  expect(`${paths.ann} ${paths.bob}`).toContain('relay');
});

test('a home that blocks all UDP connects through the relay over TCP', async ({ consoleErrors }) => {
  test.setTimeout(120_000);
  topo('nat1', 'cone');
  topo('nat2', 'symmetric');
  topo('udp', 'home1', 'block');
  try {
    const { paths } = await callBetweenHomes(server, browsers, 'udp-blocked', consoleErrors);
    expect(paths.ann).toMatch(/^relay\/tcp->/);
  } finally {
    topo('udp', 'home1', 'allow');
  }
});

test('with a relay-only ICE policy (only relay addresses are ever shared) the call connects', async ({
  consoleErrors,
}) => {
  test.setTimeout(120_000);
  topo('nat1', 'cone');
  topo('nat2', 'cone');
  const contexts: BrowserContext[] = [];
  try {
    const pages: Page[] = [];
    for (const [browser, name] of [[browsers[0], 'Ann'], [browsers[1], 'Bob']] as const) {
      const context = await browser.newContext();
      contexts.push(context);
      // What a privacy-minded browser setting (or an embedding app) does: every connection
      // only ever uses relayed candidates.
      await context.addInitScript(() => {
        const Original = window.RTCPeerConnection;
        (window as any).RTCPeerConnection = class extends Original {
          constructor(config?: RTCConfiguration) {
            super({ ...(config ?? {}), iceTransportPolicy: 'relay' });
          }
        };
      });
      pages.push(await joinCall(context, server, 'relay-only', name, consoleErrors));
    }
    const [ann, bob] = pages;
    await expectVideoFlowing(ann, 'Bob');
    await expectVideoFlowing(bob, 'Ann');
    const paths = { ann: await selectedPath(ann), bob: await selectedPath(bob) };
    console.log(`relay only: Ann ${paths.ann}, Bob ${paths.bob}`);
    // Either relay transport may win the race to be nominated; only relays may be used.
    expect(paths.ann).toMatch(/^relay\/(udp|tcp)->relay$/);
    expect(paths.bob).toMatch(/^relay\/(udp|tcp)->relay$/);
  } finally {
    for (const context of contexts) await context.close();
  }
});

test('through the forwarding unit: a home without UDP, one behind a symmetric NAT and one on the public network all see each other', async ({
  consoleErrors,
}) => {
  test.setTimeout(180_000);
  topo('nat1', 'cone');
  topo('nat2', 'symmetric');
  topo('udp', 'home1', 'block');
  const sfu = await startServer(
    [
      '--public-ip', PUBLIC_IP,
      '--media', 'sfu',
      '--media-addr', `${PUBLIC_IP}:0`,
      '--turn-addr', `${PUBLIC_IP}:3479`,
      '--relay-ports', '40000-40999',
      '--metrics-addr', 'off',
    ],
    { addr: `${PUBLIC_IP}:3001`, netns: 'np-pub' },
  );
  const contexts: BrowserContext[] = [];
  try {
    const people: [Browser, string][] = [
      [browsers[0], 'Ann'],
      [browsers[1], 'Bob'],
      [await homeBrowser('pub'), 'Cat'],
    ];
    const pages: Record<string, Page> = {};
    for (const [browser, name] of people) {
      const context = await browser.newContext();
      contexts.push(context);
      pages[name] = await joinCall(context, sfu, 'through-server', name, consoleErrors);
    }
    for (const [me, page] of Object.entries(pages)) {
      for (const other of Object.keys(pages).filter((n) => n !== me)) {
        await expectVideoFlowing(page, other);
      }
    }
    const paths = {
      Ann: await selectedPath(pages.Ann),
      Bob: await selectedPath(pages.Bob),
      Cat: await selectedPath(pages.Cat),
    };
    console.log(`through the server: Ann ${paths.Ann}, Bob ${paths.Bob}, Cat ${paths.Cat}`);
    // Ann has no UDP at all: she reaches the forwarding unit through the relay over TCP.
    expect(paths.Ann).toMatch(/^relay\/tcp->/);
  } finally {
    for (const context of contexts) await context.close();
    await sfu.stop();
    topo('udp', 'home1', 'allow');
  }
});

/** The link states `page` shows on `name`'s tile, sampled every 100 ms for `ms`, each with
 * when it was first seen (ms from the start). */
async function linkStatesSeen(page: Page, name: string, ms: number): Promise<Record<string, number>> {
  return page.evaluate(
    ([name, ms]) =>
      new Promise<Record<string, number>>((resolve) => {
        const seen: Record<string, number> = {};
        const started = performance.now();
        const timer = setInterval(() => {
          const tile = document.querySelector(`[data-testid="remote-tile"][data-name="${CSS.escape(name as string)}"]`);
          const state = tile?.getAttribute('data-link');
          const at = Math.round(performance.now() - started);
          if (state && !(state in seen)) seen[state] = at;
          if (at > (ms as number)) {
            clearInterval(timer);
            resolve(seen);
          }
        }, 100);
      }),
    [name, ms] as const,
  );
}

test('without a relay, a direct link that cannot connect is given up on both sides and says why', async ({
  consoleErrors,
}) => {
  test.setTimeout(120_000);
  topo('nat1', 'symmetric');
  topo('nat2', 'symmetric');
  const meshOnly = await startServer(
    ['--turn', 'off', '--media', 'mesh', '--public-ip', PUBLIC_IP, '--metrics-addr', 'off'],
    { addr: `${PUBLIC_IP}:3002`, netns: 'np-pub' },
  );
  const contexts = [await browsers[0].newContext(), await browsers[1].newContext()];
  try {
    const ann = await joinCall(contexts[0], meshOnly, 'no-path', 'Ann', consoleErrors);
    const bob = await joinCall(contexts[1], meshOnly, 'no-path', 'Bob', consoleErrors);
    // Sampled for the first 20 s after Bob joined: "connecting…", then the failure within
    // the 15 s deadline; never "reconnecting…".
    const [annSaw, bobSaw] = await Promise.all([
      linkStatesSeen(ann, 'Bob', 20_000),
      linkStatesSeen(bob, 'Ann', 20_000),
    ]);
    for (const seen of [annSaw, bobSaw]) {
      expect(Object.keys(seen)).toContain('unreachable');
      expect(seen.unreachable).toBeLessThanOrEqual(16_000);
      expect(Object.keys(seen)).not.toContain('reconnecting');
      expect(Object.keys(seen)).not.toContain('connected');
    }
    for (const [page, other] of [[ann, 'Bob'], [bob, 'Ann']] as const) {
      await expect(remoteTile(page, other)).toHaveAttribute('data-link', 'unreachable');
      await expect(remoteTile(page, other).locator('.link-state')).toContainText('your networks block a direct call');
    }
    console.log(`no relay, mesh only: Ann saw ${JSON.stringify(annSaw)}, Bob saw ${JSON.stringify(bobSaw)} (ms after Bob joined)`);
  } finally {
    for (const context of contexts) await context.close();
    await meshOnly.stop();
  }
});

test('without a relay, a call whose direct link cannot connect moves through the server and connects', async ({
  consoleErrors,
}) => {
  test.setTimeout(120_000);
  topo('nat1', 'symmetric');
  topo('nat2', 'symmetric');
  const auto = await startServer(
    [
      '--turn', 'off',
      '--media', 'auto',
      '--public-ip', PUBLIC_IP,
      '--media-addr', `${PUBLIC_IP}:0`,
      '--metrics-addr', 'off',
    ],
    { addr: `${PUBLIC_IP}:3003`, netns: 'np-pub' },
  );
  const contexts = [await browsers[0].newContext(), await browsers[1].newContext()];
  try {
    const ann = await joinCall(contexts[0], auto, 'fallback', 'Ann', consoleErrors);
    const bob = await joinCall(contexts[1], auto, 'fallback', 'Bob', consoleErrors);
    const joined = Date.now();
    await expectVideoFlowing(ann, 'Bob');
    await expectVideoFlowing(bob, 'Ann');
    const paths = { ann: await selectedPath(ann), bob: await selectedPath(bob) };
    console.log(`no relay, auto: video both ways ${Date.now() - joined} ms after Bob joined; Ann ${paths.ann}, Bob ${paths.bob}`);
    // Through the forwarding unit: its host candidate on the public network is the far end.
    expect(paths.ann).toMatch(/->host$/);
    expect(paths.bob).toMatch(/->host$/);
  } finally {
    for (const context of contexts) await context.close();
    await auto.stop();
  }
});
