// Who gets in, in real pages: a host sets a meeting password, a newcomer is asked for it,
// a wrong one is refused in plain words and the right one lets them in; a server that
// requires signed tokens turns away a page without one and lets a host token in as host.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { test, expect, joinRoom, openPage, startServer, repoRoot } from './fixtures';

test('a host sets a password: a newcomer is asked for it, a wrong one is refused, the right one lets them in', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinRoom(await newContext(), server, 'secret-plans', 'Ann', consoleErrors);
  await ann.getByTestId('host-password').fill('tiger stripes');
  await ann.getByTestId('host-set-password').click();
  await expect(ann.getByTestId('host-clear-password')).toBeVisible();

  const bob = await openPage(await newContext(), `${server.url}/r/secret-plans`, consoleErrors);
  await bob.getByLabel('Your name').fill('Bob');
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(bob.getByRole('alert').filter({ hasText: 'This meeting has a password' })).toBeVisible();
  await bob.getByTestId('password-input').fill('lion');
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(bob.getByRole('alert').filter({ hasText: "That is not the meeting's password" })).toBeVisible();
  await expect(ann.getByTestId('participant-count')).toHaveText('1 person');

  await bob.getByTestId('password-input').fill('tiger stripes');
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await expect(bob.getByTestId('participant-count')).toHaveText('2 people');
  await expect(ann.getByTestId('participant-count')).toHaveText('2 people');

  // Removed again, newcomers need nothing.
  await ann.getByTestId('host-clear-password').click();
  await expect(ann.getByTestId('host-clear-password')).toHaveCount(0);
  await joinRoom(await newContext(), server, 'secret-plans', 'Cy', consoleErrors);
  await expect(ann.getByTestId('participant-count')).toHaveText('3 people');
});

test('a token server turns away a page without a token and lets a host token in as host', async ({
  newContext,
  consoleErrors,
}) => {
  const secret = 'end-to-end shared secret, not for production';
  const server = await startServer(['--auth-secret', secret]);
  try {
    // No token: the page says what to do, and nobody gets in.
    const stranger = await openPage(await newContext(), `${server.url}/r/board`, consoleErrors);
    await stranger.getByLabel('Your name').fill('Stranger');
    await stranger.getByRole('button', { name: 'Join', exact: true }).click();
    await expect(stranger.getByRole('alert').filter({ hasText: 'only people with an invitation link' })).toBeVisible();

    const token = execFileSync(
      path.join(repoRoot, 'target', 'release', 'room'),
      ['token', '--auth-secret', secret, '--room', 'board', '--name', 'Ann Lee', '--role', 'host'],
      { encoding: 'utf8' },
    ).trim();
    const ann = await openPage(await newContext(), `${server.url}/r/board?token=${token}`, consoleErrors);
    // The name comes from the token and cannot be changed here.
    await expect(ann.getByLabel('Your name')).toHaveValue('Ann Lee');
    await expect(ann.getByLabel('Your name')).toHaveJSProperty('readOnly', true);
    await ann.getByRole('button', { name: 'Join', exact: true }).click();
    await expect(ann.getByTestId('participant-count')).toHaveText('1 person');
    await expect(ann.getByTestId('host-panel')).toBeVisible();
    await expect(ann.getByTestId('people').locator('.person', { hasText: 'Ann Lee' }).getByTestId('role-badge')).toHaveText('Host');

    // A member token: in, without host tools.
    const member = execFileSync(
      path.join(repoRoot, 'target', 'release', 'room'),
      ['token', '--auth-secret', secret, '--room', '*', '--name', 'Bob'],
      { encoding: 'utf8' },
    ).trim();
    const bob = await openPage(await newContext(), `${server.url}/r/board?token=${member}`, consoleErrors);
    await bob.getByRole('button', { name: 'Join', exact: true }).click();
    await expect(bob.getByTestId('participant-count')).toHaveText('2 people');
    await expect(bob.getByTestId('host-panel')).toHaveCount(0);
  } finally {
    await server.stop();
  }
});
