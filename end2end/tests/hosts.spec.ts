// Hosts in real pages: the first one in is host; a host mutes someone (who cannot unmute
// while only hosts may), removes someone (gone at once, kept out, let back in), locks the
// meeting, hands on the role by leaving, and ends the meeting for everyone.
import { test, expect, joinRoom, Page } from './fixtures';
import { joinCall } from './call-helpers';

/** Opens the host actions for `name` in the participant list of `page`. */
async function hostActions(page: Page, name: string) {
  const person = page.getByTestId('people').locator('.person', { hasText: name });
  await person.getByTestId('person-actions').locator('summary').click();
  return person;
}

test('a host mutes a participant, who cannot unmute while only hosts may, until allowed', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(60_000);
  const ann = await joinCall(await newContext(), server, 'muting', 'Ann', consoleErrors);
  const bob = await joinCall(await newContext(), server, 'muting', 'Bob', consoleErrors);
  await expect(ann.getByTestId('people').locator('.person', { hasText: 'Ann' }).getByTestId('role-badge')).toHaveText('Host');
  await expect(bob.getByTestId('host-panel')).toHaveCount(0);
  await expect(bob.getByTestId('person-actions')).toHaveCount(0);
  await expect(bob.getByRole('button', { name: 'Mute microphone' })).toBeVisible();

  await ann.getByTestId('host-only-hosts-unmute').check();
  const person = await hostActions(ann, 'Bob');
  await person.getByTestId('host-mute').click();
  // Bob's microphone is off, he is told by whom, and everyone sees it.
  await expect(bob.getByRole('button', { name: 'Unmute microphone' })).toBeVisible();
  await expect(bob.getByTestId('host-notice')).toContainText('Ann muted your microphone');
  await expect(ann.getByTestId('people').locator('.person', { hasText: 'Bob' }).getByRole('img', { name: 'Mic off' })).toBeVisible();

  // He cannot turn it on again: the page says why and the microphone stays off.
  await bob.getByRole('button', { name: 'Unmute microphone' }).click();
  await expect(bob.getByRole('alert').filter({ hasText: 'Only a host can let you turn it on' })).toBeVisible();
  await expect(bob.getByRole('button', { name: 'Unmute microphone' })).toBeVisible();

  // Allowed, he unmutes, and the host sees it.
  await person.getByTestId('host-allow-unmute').click();
  await expect(bob.getByTestId('host-notice')).toContainText('Ann lets you turn');
  await bob.getByRole('button', { name: 'Unmute microphone' }).click();
  await expect(bob.getByRole('button', { name: 'Mute microphone' })).toBeVisible();
  await expect(ann.getByTestId('people').locator('.person', { hasText: 'Bob' }).getByRole('img', { name: 'Mic on' })).toBeVisible();
});

test('a host removes a participant: gone within two seconds, kept out under another name, let back in', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinRoom(await newContext(), server, 'removal', 'Ann', consoleErrors);
  const bobContext = await newContext();
  const bob = await joinRoom(bobContext, server, 'removal', 'Bob', consoleErrors);
  await expect(ann.getByTestId('participant-count')).toHaveText('2 people');

  const person = await hostActions(ann, 'Bob');
  await person.getByTestId('host-remove').click();
  const removedAt = Date.now();
  await person.getByTestId('host-remove-confirm').click();
  await expect(ann.getByTestId('participant-count')).toHaveText('1 person', { timeout: 2_000 });
  expect(Date.now() - removedAt).toBeLessThan(2_000);
  await expect(bob.getByTestId('ended')).toContainText('Ann removed you from this meeting');
  await expect(bob.getByRole('button', { name: 'Rejoin' })).toHaveCount(0);
  await expect(ann.getByTestId('removed-list')).toContainText('Bob');

  // The same browser, another name: refused, in plain words.
  await bob.goto(`${server.url}/r/removal`);
  await bob.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await bob.getByLabel('Your name').fill('Robert');
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(bob.getByRole('alert').filter({ hasText: 'A host removed you' })).toBeVisible();
  await expect(ann.getByTestId('participant-count')).toHaveText('1 person');

  // Let back in, he joins.
  await ann.getByTestId('removed-list').getByRole('button', { name: 'Let back in' }).click();
  await expect(ann.getByTestId('removed-list')).toHaveCount(0);
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(ann.getByTestId('participant-count')).toHaveText('2 people');
});

test('a locked meeting keeps newcomers out; the host role passes on when the host leaves; ending closes it for all', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinRoom(await newContext(), server, 'locking', 'Ann', consoleErrors);
  await expect(ann.getByTestId('host-notice')).toContainText('You are the host');
  await expect(ann.getByTestId('host-link')).toHaveValue(new RegExp(`/r/locking\\?host=[0-9a-f]{32}$`));
  const bob = await joinRoom(await newContext(), server, 'locking', 'Bob', consoleErrors);

  await ann.getByTestId('host-lock').check();
  await expect(bob.getByTestId('locked-badge')).toBeVisible();
  const cy = await (await newContext()).newPage();
  cy.on('pageerror', (err) => consoleErrors.push(`Cy: ${err.message}`));
  await cy.goto(`${server.url}/r/locking`);
  await cy.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await cy.getByLabel('Your name').fill('Cy');
  await cy.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(cy.getByRole('alert').filter({ hasText: 'The host locked this meeting' })).toBeVisible();

  // The host leaves: Bob becomes host, with the host tools and a host link of his own.
  await ann.getByRole('button', { name: 'Leave' }).click();
  await expect(bob.getByText('Bob is now the host')).toBeVisible();
  await expect(bob.getByTestId('host-panel')).toBeVisible();
  await expect(bob.getByTestId('host-link')).toBeVisible();
  await bob.getByTestId('host-lock').uncheck();
  await cy.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(cy.getByTestId('participant-count')).toHaveText('2 people');

  await bob.getByTestId('host-end').click();
  await bob.getByTestId('host-end-confirm').click();
  await expect(cy.getByTestId('ended')).toContainText('Bob ended the meeting for everyone');
  await expect(bob.getByTestId('ended')).toContainText('Bob ended the meeting for everyone');
});

test('with the waiting room on, a newcomer waits seeing nothing, then is admitted; another is denied', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinRoom(await newContext(), server, 'lobby', 'Ann', consoleErrors);
  await ann.getByTestId('host-waiting-room').check();
  await ann.getByLabel('Message').fill('only for those let in');
  await ann.getByLabel('Message').press('Enter');

  const openAndJoin = async (name: string) => {
    const page = await (await newContext()).newPage();
    page.on('pageerror', (err) => consoleErrors.push(`${name}: ${err.message}`));
    await page.goto(`${server.url}/r/lobby`);
    await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
    await page.getByLabel('Your name').fill(name);
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    return page;
  };
  const bob = await openAndJoin('Bob');
  await expect(bob.getByTestId('waiting')).toContainText('Waiting for a host to let you in');
  await expect(bob.getByText('only for those let in')).toHaveCount(0);
  await expect(bob.getByText('Ann')).toHaveCount(0);
  await expect(ann.getByTestId('waiting-count')).toHaveText('1 person waiting');
  await expect(ann.getByTestId('waiting-list')).toContainText('Bob');

  await ann.getByTestId('waiting-list').getByRole('button', { name: 'Admit' }).click();
  await expect(bob.getByTestId('participant-count')).toHaveText('2 people');
  await expect(bob.getByText('only for those let in')).toBeVisible();
  await expect(ann.getByTestId('waiting-list')).toHaveCount(0);

  const cy = await openAndJoin('Cy');
  await expect(cy.getByTestId('waiting')).toBeVisible();
  await ann.getByTestId('waiting-list').getByRole('button', { name: 'Deny' }).click();
  await expect(cy.getByTestId('ended')).toContainText('Ann did not let you in');
  await expect(ann.getByTestId('participant-count')).toHaveText('2 people');
});
