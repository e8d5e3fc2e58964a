// Members without a browser of their own, for tests that need a crowd: WebSockets opened from
// one helper page of the server's origin (the server checks Origin), each joining a room and,
// if asked, its call with camera and microphone off. Cheaper than a Chromium page per member.
import type { BrowserContext, Page } from '@playwright/test';
import type { RoomServer } from './fixtures';

/** A page on the server's origin that holds the bots' sockets. */
export async function botHost(context: BrowserContext, server: RoomServer): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  return page;
}

/** `name` joins `room` (and its call unless `inCall` is false); resolves once joined. */
export async function addBot(host: Page, room: string, name: string, { inCall = true } = {}): Promise<void> {
  await host.evaluate(
    async ({ room, name, inCall }) => {
      const bots = ((window as any).__bots ??= {});
      const socket = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws`);
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error(`${name}: the socket did not open`));
      });
      const joined = new Promise((resolve, reject) => {
        socket.onmessage = (event) => {
          const msg = JSON.parse(event.data);
          if (msg.type === 'joined') resolve(msg);
          if (msg.type === 'error') reject(new Error(`${name}: ${msg.code} ${msg.message}`));
        };
      });
      socket.send(JSON.stringify({ type: 'hello', version: 7 }));
      socket.send(JSON.stringify({ type: 'join', room, name }));
      await joined;
      if (inCall) socket.send(JSON.stringify({ type: 'join_call', media: { mic: false, camera: false } }));
      bots[name] = socket;
    },
    { room, name, inCall },
  );
}

/** Sends a protocol message as bot `name`. */
export async function botSends(host: Page, name: string, msg: object): Promise<void> {
  await host.evaluate(({ name, msg }) => (window as any).__bots[name].send(JSON.stringify(msg)), { name, msg });
}

/** Bot `name` leaves (closes its socket). */
export async function removeBot(host: Page, name: string): Promise<void> {
  await host.evaluate((name) => (window as any).__bots[name].close(), name);
}
