// Rooms and chat across real browser pages: two people talk, a third in another room hears
// nothing, the home page follows rooms filling and emptying, and markup stays text.
import { test, expect, joinRoom, openPage, startServer } from './fixtures';

test('two people in a room chat both ways and see each other; another room sees none of it', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinRoom(await newContext(), server, 'team-sync', 'Ann', consoleErrors);
  const bob = await joinRoom(await newContext(), server, 'team-sync', 'Bob', consoleErrors);
  const eve = await joinRoom(await newContext(), server, 'other-room', 'Eve', consoleErrors);

  for (const page of [ann, bob]) {
    await expect(page.getByTestId('people').locator('.person-name')).toHaveText(['Ann', 'Bob']);
    await expect(page.getByTestId('participant-count')).toHaveText('2 people');
  }
  await expect(ann.getByTestId('chat')).toContainText('Bob joined');

  await ann.getByLabel('Message').fill('Hello Bob');
  await ann.getByLabel('Message').press('Enter');
  await expect(bob.getByTestId('chat').locator('.message .text')).toHaveText(['Hello Bob']);
  await expect(ann.getByLabel('Message')).toHaveValue('');

  await bob.getByLabel('Message').fill('Hi Ann!');
  await bob.getByLabel('Message').press('Enter');
  await expect(ann.getByTestId('chat').locator('.message .text')).toHaveText(['Hello Bob', 'Hi Ann!']);
  await expect(ann.locator('.message.mine .text')).toHaveText(['Hello Bob']);
  await expect(bob.locator('.message .author')).toHaveText(['Ann', 'Bob']);

  await expect(eve.getByTestId('people').locator('.person-name')).toHaveText(['Eve']);
  await expect(eve.getByTestId('participant-count')).toHaveText('1 person');
  await expect(eve.locator('.message')).toHaveCount(0);
  await expect(eve.getByTestId('chat')).not.toContainText('Bob');

  // Bob leaves: Ann sees the notice and the list shrink.
  await bob.getByRole('button', { name: 'Leave' }).click();
  await expect(ann.getByTestId('chat')).toContainText('Bob left');
  await expect(ann.getByTestId('people').locator('.person-name')).toHaveText(['Ann']);
});

test('a late joiner reads the history and a remembered name', async ({ server, newContext, consoleErrors }) => {
  const context = await newContext();
  const ann = await joinRoom(context, server, 'history', 'Ann', consoleErrors);
  for (const text of ['first', 'second', 'third']) {
    await ann.getByLabel('Message').fill(text);
    await ann.getByLabel('Message').press('Enter');
  }
  await expect(ann.locator('.message .text')).toHaveText(['first', 'second', 'third']);

  const bob = await joinRoom(await newContext(), server, 'history', 'Bob', consoleErrors);
  await expect(bob.locator('.message .text')).toHaveText(['first', 'second', 'third']);
  await expect(bob.locator('.message .author').first()).toHaveText('Ann');

  // Ann's browser remembers her name for the next room.
  const again = await openPage(context, `${server.url}/r/another`, consoleErrors);
  await expect(again.getByLabel('Your name')).toHaveValue('Ann');
});

test('a taken name is refused with a clear message and another one works', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  await joinRoom(await newContext(), server, 'names', 'Ann', consoleErrors);
  const page = await openPage(await newContext(), `${server.url}/r/names`, consoleErrors);
  await page.getByLabel('Your name').fill('ann');
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText('already uses that name');
  await page.getByLabel('Your name').fill('Ann B');
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(page.getByTestId('participant-count')).toHaveText('2 people');
});

test('the home page lists rooms live as they fill and empty', async ({ newContext, consoleErrors }) => {
  // Listing is opt-in: a list tells everyone which meetings exist.
  const server = await startServer(['--public-room-list']);
  try {
    const home = await openPage(await newContext(), server.url, consoleErrors);
    await expect(home.getByText('No meetings right now')).toBeVisible();

    const annContext = await newContext();
    const ann = await joinRoom(annContext, server, 'design-review', 'Ann', consoleErrors);
    const entry = home.locator('.room-list li[data-room="design-review"]');
    await expect(entry).toContainText('1 person');

    const bobContext = await newContext();
    await joinRoom(bobContext, server, 'design-review', 'Bob', consoleErrors);
    await expect(entry).toContainText('2 people');

    await bobContext.close();
    await expect(entry).toContainText('1 person');
    await ann.getByRole('button', { name: 'Leave' }).click();
    await expect(entry).toHaveCount(0);
    await expect(home.getByText('No meetings right now')).toBeVisible();

    // A room that is in use when the page loads is already in the server-rendered HTML.
    await joinRoom(await newContext(), server, 'standup', 'Cat', consoleErrors);
    const html = await (await fetch(server.url)).text();
    expect(html).toContain('data-room="standup"');
  } finally {
    await server.stop();
  }
});

test('without --public-room-list the home page shows no rooms', async ({ server, newContext, consoleErrors }) => {
  await joinRoom(await newContext(), server, 'private-standup', 'Ann', consoleErrors);
  const home = await openPage(await newContext(), server.url, consoleErrors);
  await expect(home.getByRole('button', { name: 'Start a new meeting' })).toBeVisible();
  await expect(home.locator('.rooms')).toHaveCount(0);
  expect(await home.content()).not.toContain('private-standup');
});

test('creating and joining rooms from the home page', async ({ server, newContext, consoleErrors }) => {
  const home = await openPage(await newContext(), server.url, consoleErrors);
  await home.getByRole('button', { name: 'Start a new meeting' }).click();
  await expect(home).toHaveURL(/\/r\/[a-z]+-[a-z]+(-[0-9a-z]{4}){4}$/);
  await expect(home.getByLabel('Your name')).toBeVisible();

  await home.goto(server.url);
  await home.getByLabel('Or join a meeting by name').fill('Weekly Sync!');
  await home.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(home).toHaveURL(/\/r\/weekly-sync$/);
});

test('markup in a name and a message is shown as text', async ({ server, newContext, consoleErrors }) => {
  // 28 characters, within the 32-character name limit; alert() would open a dialog.
  const payload = '<img src=x onerror=alert(1)>';
  const dialogs: string[] = [];
  const mallory = await joinRoom(await newContext(), server, 'xss', payload, consoleErrors);
  const bob = await joinRoom(await newContext(), server, 'xss', 'Bob', consoleErrors);
  for (const page of [mallory, bob]) page.on('dialog', (d) => dialogs.push(d.message()));

  await mallory.getByLabel('Message').fill(`<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`);
  await mallory.getByLabel('Message').press('Enter');

  await expect(bob.locator('.message .text')).toHaveText([`<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`]);
  await expect(bob.locator('.message .author')).toHaveText([payload]);
  await expect(bob.getByTestId('people').locator('.person-name').first()).toHaveText(payload);
  expect(await bob.locator('.chat-lines img, .people-list img, .chat-lines script').count()).toBe(0);
  expect(await bob.evaluate(() => (window as any).__pwned)).toBeUndefined();
  expect(await mallory.evaluate(() => (window as any).__pwned)).toBeUndefined();
  expect(dialogs).toEqual([]);
});

test('new messages scroll the chat only for a reader at the bottom', async ({ newContext, consoleErrors }) => {
  const server = await startServer(['--chat-burst', '100']);
  try {
    const ann = await joinRoom(await newContext(), server, 'scrolling', 'Ann', consoleErrors);
    const bob = await joinRoom(await newContext(), server, 'scrolling', 'Bob', consoleErrors);
    const say = async (text: string) => {
      await ann.getByLabel('Message').fill(text);
      await ann.getByLabel('Message').press('Enter');
    };
    for (let i = 0; i < 40; i++) await say(`line ${i}`);
    const list = bob.getByTestId('chat');
    await expect(list.locator('.message')).toHaveCount(40);
    const atBottom = () =>
      list.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight <= 48);
    await expect.poll(atBottom).toBe(true);

    // Bob scrolls up to read; a new message must not move him, but tells him it arrived.
    await list.evaluate((el) => (el.scrollTop = 0));
    await list.dispatchEvent('scroll');
    await say('while you were reading');
    await expect(list.locator('.message .text').last()).toHaveText('while you were reading');
    await expect(bob.getByRole('button', { name: /1 new/ })).toBeVisible();
    expect(await list.evaluate((el) => el.scrollTop)).toBe(0);

    // Jumping to the latest sticks to the bottom again for the next message.
    await bob.getByRole('button', { name: /1 new/ }).click();
    await expect.poll(atBottom).toBe(true);
    await say('and one more');
    await expect(list.locator('.message .text').last()).toHaveText('and one more');
    await expect.poll(atBottom).toBe(true);
  } finally {
    await server.stop();
  }
});

test('pages fit a phone-width screen', async ({ server, browser, consoleErrors }) => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  try {
    const home = await openPage(context, server.url, consoleErrors, { panelsOpen: false });
    const overflow = (page: typeof home) =>
      page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(await overflow(home)).toBeLessThanOrEqual(0);
    const page = await joinRoom(context, server, 'a-rather-long-room-name-for-a-phone', 'Ann', consoleErrors, {
      panelsOpen: false,
    });
    // The call controls are on screen; chat and people open from the bar.
    await expect(page.getByRole('button', { name: 'Leave' })).toBeInViewport();
    await expect(page.getByLabel('Message')).toBeHidden();
    await page.getByRole('button', { name: 'Open chat' }).click();
    await page.getByLabel('Message').scrollIntoViewIfNeeded();
    await page.getByLabel('Message').fill('x'.repeat(300));
    await page.getByLabel('Message').press('Enter');
    await expect(page.locator('.message')).toHaveCount(1);
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    await expect(page.getByLabel('Message')).toBeInViewport();
  } finally {
    await context.close();
  }
});
