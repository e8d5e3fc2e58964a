// Breakout rooms in real pages: a host splits four people into two rooms, they move with one
// click (no reload: call, chat and tiles switch), each room's chat stays in it, a broadcast
// reaches every room, and closing counts down and brings everyone back to the main room.
import { test, expect, startServer, type BrowserContext } from './fixtures';
import { expectVideoFlowing, joinCall } from './call-helpers';

test('four people into two breakout rooms and back: chat and video switch without a reload', async ({
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(180_000);
  // A short countdown, so the test need not wait the default minute.
  const server = await startServer(['--breakout-countdown-secs', '5']);
  const contexts: BrowserContext[] = [];
  const context = async () => {
    contexts.push(await newContext());
    return contexts[contexts.length - 1];
  };
  try {
    const ann = await joinCall(await context(), server, 'workshop', 'Ann', consoleErrors);
    const bob = await joinCall(await context(), server, 'workshop', 'Bob', consoleErrors);
    const cy = await joinCall(await context(), server, 'workshop', 'Cy', consoleErrors);
    const dee = await joinCall(await context(), server, 'workshop', 'Dee', consoleErrors);
    await expect(ann.getByTestId('participant-count')).toHaveText('4 people');
    await ann.getByLabel('Message').fill('welcome, everyone');
    await ann.getByLabel('Message').press('Enter');
    await expect(bob.getByTestId('chat')).toContainText('welcome, everyone');
    // No page may reload on the way: a marker set now must survive every move.
    for (const page of [ann, bob, cy, dee]) await page.evaluate(() => ((window as any).__sameDocument = true));

    // Split automatically (Bob and Dee, Cy), then move Dee to Room 2 by dragging her name and
    // back with the keyboard-reachable picker.
    await ann.getByTestId('breakout-panel').locator('summary').click();
    await ann.getByTestId('breakout-split').click();
    // The planner wants room: Ann folds the chat away while she plans.
    await ann.getByTestId('chat-toggle').click();
    const plan = ann.getByTestId('breakout-box');
    await expect(plan.nth(0)).toContainText('Bob');
    await expect(plan.nth(0)).toContainText('Dee');
    await expect(plan.nth(1)).toContainText('Cy');
    await plan.nth(0).locator('li', { hasText: 'Dee' }).locator('.person-name').dragTo(plan.nth(1));
    await expect(plan.nth(1)).toContainText('Dee');
    await ann.getByRole('combobox', { name: 'Room for Dee' }).selectOption({ label: 'Room 1' });
    await expect(plan.nth(0)).toContainText('Dee');
    await ann.getByTestId('breakout-open').click();
    await ann.getByTestId('chat-toggle').click();

    // One click each; Ann visits Room 2.
    for (const [page, room] of [[bob, 'Room 1'], [dee, 'Room 1'], [cy, 'Room 2']] as const) {
      await expect(page.getByTestId('breakout-banner')).toContainText(`You are assigned to ${room}`);
      await page.getByTestId('breakout-join').click();
      await expect(page.getByTestId('breakout-name')).toContainText(room);
    }
    await ann.getByTestId('breakout-visit').nth(1).click();
    await expect(ann.getByTestId('breakout-name')).toContainText('Room 2');
    for (const page of [ann, bob, cy, dee]) await expect(page.getByTestId('participant-count')).toHaveText('2 people');
    await expectVideoFlowing(bob, 'Dee');
    await expectVideoFlowing(dee, 'Bob');
    await expectVideoFlowing(cy, 'Ann');

    // Each room's chat is its own; the main room's is not shown inside.
    await expect(bob.getByTestId('chat')).not.toContainText('welcome, everyone');
    await bob.getByLabel('Message').fill('hello room one');
    await bob.getByLabel('Message').press('Enter');
    await expect(dee.getByTestId('chat')).toContainText('hello room one');
    await cy.getByLabel('Message').fill('hello room two');
    await cy.getByLabel('Message').press('Enter');
    await expect(ann.getByTestId('chat')).toContainText('hello room two');
    await expect(cy.getByTestId('chat')).not.toContainText('hello room one');
    await expect(bob.getByTestId('chat')).not.toContainText('hello room two');

    // A broadcast from Ann, visiting Room 2, reaches Room 1.
    await ann.getByTestId('breakout-broadcast-text').fill('two minutes left');
    await ann.getByTestId('breakout-broadcast').click();
    await expect(bob.getByTestId('chat')).toContainText('Ann to all rooms: two minutes left');

    // Closing: everyone sees the countdown, then is back in the main room with its chat.
    await ann.getByTestId('breakout-close').click();
    await expect(dee.getByTestId('breakout-time')).toContainText('Breakout rooms close in');
    for (const page of [ann, bob, cy, dee]) {
      await expect(page.getByTestId('participant-count')).toHaveText('4 people', { timeout: 20_000 });
      await expect(page.getByTestId('breakout-name')).toHaveCount(0);
      await expect(page.getByTestId('chat')).toContainText('welcome, everyone');
      await expect(page.getByTestId('breakout-banner')).toHaveCount(0);
      expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    }
    await expect(bob.getByTestId('chat')).not.toContainText('hello room one');
    await expectVideoFlowing(bob, 'Cy');
    await expectVideoFlowing(cy, 'Dee');
  } finally {
    // Pages first: a page whose server stops tries to reconnect, and says so in the console.
    for (const context of contexts) await context.close();
    await server.stop();
  }
});
