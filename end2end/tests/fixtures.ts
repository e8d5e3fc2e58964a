// Shared helpers: start a real Room server per test, open pages that fail the test on any
// console error, and join rooms the way a person would.
import { test as base, expect, Browser, BrowserContext, Page } from '@playwright/test';
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
const binary = process.env.ROOM_BIN ?? path.join(repoRoot, 'target', 'release', 'room');

/** host:port of servers a test has stopped or killed. A page still open then retries its
 * WebSocket after the backoff, and Chromium logs the refused connection as a console error;
 * that error is the test's own doing, not the page's, so the console check skips it. */
const stoppedHosts = new Set<string>();

/** Whether `text` is Chromium's report of a refused WebSocket to a server the test stopped. */
export function refusedByStoppedServer(text: string): boolean {
  const match = text.match(/WebSocket connection to 'wss?:\/\/([^/']+)\/[^']*' failed: .*ERR_CONNECTION_REFUSED/);
  return match !== null && stoppedHosts.has(match[1]);
}

export class RoomServer {
  constructor(
    public readonly url: string,
    private readonly child: ChildProcess,
    public readonly args: string[],
    public readonly dataDir: string,
  ) {}

  /** host:port, to start a successor on the same address. */
  get addr(): string {
    return new URL(this.url).host;
  }

  /** Whether the process has exited, by itself or by a signal. */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** SIGTERM, as an operator would; resolves when the process has exited, and fails unless
   * it shut down cleanly (exit code 0). */
  async stop(): Promise<void> {
    if (this.exited) return;
    stoppedHosts.add(this.addr);
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`the server at ${this.addr} did not shut down cleanly: exit code ${code}`);
  }

  /** SIGKILL: the server dies without a goodbye. */
  async kill(): Promise<void> {
    if (this.exited) return;
    stoppedHosts.add(this.addr);
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** Starts the release binary on a free loopback port (or `addr`) with extra flags, keeping
 * its chat history in `dataDir` (a fresh temporary directory unless given), inside network
 * namespace `netns` if given. */
export async function startServer(
  args: string[] = [],
  {
    addr = '127.0.0.1:0',
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'room-e2e-')),
    netns = undefined as string | undefined,
  } = {},
): Promise<RoomServer> {
  // The media socket on a free loopback port unless the test picks one.
  const media = args.includes('--media-addr') ? [] : ['--media-addr', '127.0.0.1:0'];
  const roomArgs = ['--addr', addr, '--data-dir', dataDir, ...media, ...args];
  // In a network namespace (NAT tests): `ip netns exec` replaces itself with the server.
  const [command, commandArgs] = netns
    ? ['ip', ['netns', 'exec', netns, binary, ...roomArgs]]
    : [binary, roomArgs];
  const child = spawn(command, commandArgs, {
    cwd: repoRoot,
    env: { ...process.env, ROOM_LOG: process.env.ROOM_LOG ?? 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${seen}`)), 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const match = seen.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${seen}`)));
  });
  const server = new RoomServer(url, child, args, dataDir);
  // A successor on a stopped server's address: refusals from now on are real failures.
  stoppedHosts.delete(server.addr);
  return server;
}

/** How a test's browser starts: with the chat and people panels open (most tests read them;
 * a person opens them once and the page remembers), or as on a first visit. */
export type PageOptions = { panelsOpen?: boolean };

/** Pages of `context` start with the chat and people panels open, as if opened on an earlier
 * visit (the page keeps that choice in localStorage). */
export async function rememberPanelsOpen(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    localStorage.setItem('room.panel.chat', 'true');
    localStorage.setItem('room.panel.people', 'true');
  });
}

/** A page whose console errors and uncaught exceptions are collected for the test to check. */
export async function openPage(
  context: BrowserContext,
  url: string,
  errors: string[],
  { panelsOpen = true }: PageOptions = {},
): Promise<Page> {
  if (panelsOpen) await rememberPanelsOpen(context);
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !refusedByStoppedServer(msg.text())) errors.push(`${url}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`${url}: ${err.message}`));
  await page.goto(url);
  await waitForHydration(page);
  return page;
}

/** The WASM client marks the document once it has taken over the server-rendered page. */
export async function waitForHydration(page: Page): Promise<void> {
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true', null, {
    timeout: 20_000,
  });
}

/** Opens the room page and joins under `name`. */
export async function joinRoom(
  context: BrowserContext,
  server: RoomServer,
  room: string,
  name: string,
  errors: string[],
  options: PageOptions = {},
): Promise<Page> {
  const page = await openPage(context, `${server.url}/r/${room}`, errors, options);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(page.getByTestId('participant-count')).toBeVisible();
  return page;
}

type Fixtures = {
  server: RoomServer;
  consoleErrors: string[];
  /** A browser context, closed after the test; its pages start with the panels open unless
   * `panelsOpen` is false (a first visit). */
  newContext: (options?: PageOptions) => Promise<BrowserContext>;
};

export const test = base.extend<Fixtures>({
  server: async ({}, use) => {
    const server = await startServer();
    await use(server);
    await server.stop();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  },
  consoleErrors: async ({}, use) => {
    const errors: string[] = [];
    await use(errors);
    expect(errors, 'no console errors').toEqual([]);
  },
  newContext: async ({ browser }, use) => {
    const contexts: BrowserContext[] = [];
    await use(async ({ panelsOpen = true }: PageOptions = {}) => {
      const context = await browser.newContext();
      if (panelsOpen) await rememberPanelsOpen(context);
      contexts.push(context);
      return context;
    });
    for (const context of contexts) await context.close();
  },
});

export { expect };
export type { Browser, BrowserContext, Page };
