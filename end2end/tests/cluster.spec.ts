// Several nodes sharing rooms through Redis (`--redis-url`), in real pages: two people reach
// the meeting through different nodes and meet in one room; the node running it is killed;
// both pages come back through the node that is left, as themselves, and the call resumes.
import { spawn, ChildProcess } from 'node:child_process';
import * as net from 'node:net';

import { test, expect, startServer, BrowserContext, Page, RoomServer } from './fixtures';
import { joinCall, expectVideoFlowing } from './call-helpers';

// A killed node makes the browser log failed WebSocket attempts while it reconnects.
const reconnectNoise = /WebSocket connection to .* failed/;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own on a free loopback port, without persistence. */
async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  await expect
    .poll(
      () =>
        new Promise<boolean>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        }),
      { timeout: 10_000 },
    )
    .toBe(true);
  return { url: `redis://127.0.0.1:${port}`, child };
}

/**
 * A TCP load balancer in front of the nodes, as an operator would put one: connections go to
 * the first of `backends` that accepts them, so a page keeps to its node while that node
 * lives, and reaches the next one when it dies.
 */
async function startBalancer(backends: string[]): Promise<{ url: string; close: () => void }> {
  const server = net.createServer((client) => {
    client.pause();
    client.on('error', () => client.destroy());
    const attempt = (index: number) => {
      if (index >= backends.length) {
        client.destroy();
        return;
      }
      const [host, port] = backends[index].split(':');
      const upstream = net.connect(Number(port), host);
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.pipe(upstream).pipe(client);
        client.once('close', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
        client.resume();
      });
      upstream.on('error', () => {
        if (connected) client.destroy();
        else attempt(index + 1);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/** Joins the call through the balancer at `url`, as `joinCall` does through a server. */
function joinVia(context: BrowserContext, url: string, name: string, errors: string[]): Promise<Page> {
  const entry = { url } as RoomServer;
  return joinCall(context, entry, 'cluster', name, errors, reconnectNoise);
}

async function say(page: Page, text: string) {
  await page.getByLabel('Message').fill(text);
  await page.getByLabel('Message').press('Enter');
}

const messages = (page: Page) => page.locator('.message .text');

for (const media of ['mesh', 'sfu']) {
  test(`pages on two nodes meet in one room; the owner is killed and both carry on through the other (${media})`, async ({
    newContext,
    consoleErrors,
  }) => {
    test.setTimeout(120_000);
    const redis = await startRedis();
    const nodes: RoomServer[] = [];
    const balancers: { close: () => void }[] = [];
    try {
      for (const id of ['node-a', 'node-b']) {
        nodes.push(
          await startServer(['--redis-url', redis.url, '--node-id', id, '--metrics-addr', 'off', '--media', media]),
        );
      }
      const [a, b] = nodes;
      // Ann's entry prefers node a, Bob's node b; each falls back to the other.
      const toA = await startBalancer([a.addr, b.addr]);
      const toB = await startBalancer([b.addr, a.addr]);
      balancers.push(toA, toB);

      const ann = await joinVia(await newContext(), toA.url, 'Ann', consoleErrors);
      const bob = await joinVia(await newContext(), toB.url, 'Bob', consoleErrors);
      // One meeting: each sees the other, hears them, and reads their chat.
      for (const page of [ann, bob]) await expect(page.getByTestId('people').locator('.person-name')).toHaveCount(2);
      await expectVideoFlowing(ann, 'Bob');
      await expectVideoFlowing(bob, 'Ann');
      await say(ann, 'through node a');
      await say(bob, 'through node b');
      for (const page of [ann, bob]) await expect(messages(page)).toHaveText(['through node a', 'through node b']);

      // Ann opened the room, so node a runs it. It dies.
      // (How long each page shows "reconnecting" depends on when it notices; the notice
      // that it is back stays.)
      await a.kill();
      for (const page of [ann, bob]) {
        // Resumed as themselves, not joined anew ("Reconnected", not "…after a restart").
        await expect(page.getByTestId('chat')).toContainText('Reconnected', { timeout: 30_000 });
        await expect(page.getByTestId('chat')).not.toContainText('restart');
        await expect(page.getByTestId('reconnecting')).toBeHidden();
      }
      await say(ann, 'after the crash');
      await say(bob, 'still here');
      const all = ['through node a', 'through node b', 'after the crash', 'still here'];
      for (const page of [ann, bob]) {
        await expect(messages(page)).toHaveText(all);
        await expect(page.getByTestId('people').locator('.person-name')).toHaveCount(2);
      }
      // The call is set up again on node b (through its own forwarding unit, in sfu).
      await expectVideoFlowing(ann, 'Bob');
      await expectVideoFlowing(bob, 'Ann');
    } finally {
      for (const balancer of balancers) balancer.close();
      for (const node of nodes) await node.stop();
      redis.child.kill('SIGKILL');
    }
  });
}
