// Video calls across real Chromium pages with fake camera and microphone: a three-way mesh
// whose video really decodes, mute indicators, camera switching, leaving, and the call cap.
import { test, expect, startServer, openPage } from './fixtures';
import { joinCall, recordPeerConnections, remoteTile, expectVideoFlowing, sentVideoTrack } from './call-helpers';


test('three people see and hear each other; mute, camera switch and leaving show up for all', async ({
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(120_000);
  const server = await startServer(['--max-call-members', '3']);
  try {
    const ann = await joinCall(await newContext(), server, 'standup', 'Ann', consoleErrors);
    const bob = await joinCall(await newContext(), server, 'standup', 'Bob', consoleErrors);
    const cat = await joinCall(await newContext(), server, 'standup', 'Cat', consoleErrors);
    const pages = { Ann: ann, Bob: bob, Cat: cat };

    // Everyone sees two remote tiles whose video really plays.
    for (const [me, page] of Object.entries(pages)) {
      await expect(page.getByTestId('remote-tile')).toHaveCount(2);
      for (const other of Object.keys(pages).filter((n) => n !== me)) {
        await expectVideoFlowing(page, other);
        await expect(remoteTile(page, other)).toHaveAttribute('data-link', 'connected');
      }
    }

    // Ann mutes: Bob and Cat see the muted mark on her tile; unmuting clears it.
    await ann.getByRole('button', { name: 'Mute microphone' }).click();
    for (const page of [bob, cat]) await expect(remoteTile(page, 'Ann').getByTestId('mic-off')).toBeVisible();
    await expect(ann.getByTestId('self-tile').getByLabel('Mic off')).toBeVisible();
    await ann.getByRole('button', { name: 'Unmute microphone' }).click();
    for (const page of [bob, cat]) await expect(remoteTile(page, 'Ann').getByTestId('mic-off')).toHaveCount(0);

    // Ann switches camera without renegotiating; Bob keeps decoding frames. (Chromium's fake
    // fake_device_1 is a depth camera that WebRTC cannot encode; fake_device_2 is a normal one.)
    // The camera picker sits in the camera button's menu during a call.
    await ann.locator('summary[aria-label="Camera settings"]').click();
    const cameras = ann.getByRole('combobox', { name: 'Camera' });
    await expect(cameras).toHaveValue(await cameras.locator('option', { hasText: 'fake_device_0' }).getAttribute('value') ?? '');
    const second = (await cameras.locator('option', { hasText: 'fake_device_2' }).getAttribute('value'))!;
    const connectionsBefore = await ann.evaluate(() => (window as any).__peerConnections.length);
    const sentBefore = await sentVideoTrack(ann);
    await cameras.selectOption(second);
    await expect(cameras).toHaveValue(second);
    await expect.poll(() => sentVideoTrack(ann)).toContain('fake_device_2');
    expect(sentBefore).toContain('fake_device_0');
    await expectVideoFlowing(bob, 'Ann');
    await expectVideoFlowing(cat, 'Ann');
    // Same connections, same transceivers: the track was replaced, nothing renegotiated.
    expect(await ann.evaluate(() => (window as any).__peerConnections.length)).toBe(connectionsBefore);
    await ann.locator('summary[aria-label="Camera settings"]').click();

    // Camera off shows initials instead of video on the others' screens.
    await ann.getByRole('button', { name: 'Turn camera off' }).click();
    await expect(remoteTile(bob, 'Ann').getByTestId('camera-off')).toBeVisible();
    await expect(remoteTile(bob, 'Ann').locator('.placeholder')).toHaveText('A');
    await ann.getByRole('button', { name: 'Turn camera on' }).click();
    await expect(remoteTile(bob, 'Ann').getByTestId('camera-off')).toHaveCount(0);
    await expectVideoFlowing(bob, 'Ann');

    // Ann leaves: her tile is gone for Bob and Cat within 3 seconds.
    const left = Date.now();
    await ann.getByRole('button', { name: 'Leave' }).click();
    for (const page of [bob, cat]) await expect(remoteTile(page, 'Ann')).toHaveCount(0, { timeout: 3_000 });
    expect(Date.now() - left).toBeLessThan(3_000);
    // Bob and Cat carry on.
    await expectVideoFlowing(bob, 'Cat');
    await expectVideoFlowing(cat, 'Bob');
  } finally {
    await server.stop();
  }
});

test('a fourth person over a cap of three is told why and can still chat', async ({ newContext, consoleErrors }) => {
  test.setTimeout(90_000);
  const server = await startServer(['--max-call-members', '3']);
  try {
    for (const name of ['Ann', 'Bob', 'Cat']) await joinCall(await newContext(), server, 'capped', name, consoleErrors);
    const dan = await openPage(await newContext(), `${server.url}/r/capped`, consoleErrors);
    await dan.getByLabel('Your name').fill('Dan');
    await dan.getByRole('button', { name: 'Join', exact: true }).click();
    await expect(dan.getByTestId('call-refused')).toContainText('The call is full (3 people). You can still chat.');
    await expect(dan.getByTestId('remote-tile')).toHaveCount(3);
    // Dan sees the call's members but sends nothing; chat works.
    await dan.getByLabel('Message').fill('can I join later?');
    await dan.getByLabel('Message').press('Enter');
    await expect(dan.locator('.message .text')).toHaveText(['can I join later?']);
  } finally {
    await server.stop();
  }
});

test('closing the tab drops the tile for the others', async ({ server, newContext, consoleErrors }) => {
  const annContext = await newContext();
  const ann = await joinCall(annContext, server, 'tabs', 'Ann', consoleErrors);
  const bob = await joinCall(await newContext(), server, 'tabs', 'Bob', consoleErrors);
  await expectVideoFlowing(bob, 'Ann');
  await ann.close();
  await expect(remoteTile(bob, 'Ann')).toHaveCount(0, { timeout: 3_000 });
  await expect(bob.getByTestId('chat')).toContainText('Ann left');
});

test('without camera or microphone permission, people can still join to listen and chat', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const context = await newContext();
  const page = await context.newPage();
  await page.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () =>
      Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await page.goto(`${server.url}/r/no-devices`);
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await expect(page.getByTestId('media-problem')).toContainText('access is blocked');
  await page.getByLabel('Your name').fill('Listener');
  await page.getByRole('button', { name: 'Join without camera and mic' }).click();
  await expect(page.getByTestId('self-tile')).toBeVisible();
  await expect(page.getByTestId('self-tile').getByLabel('Mic off')).toBeVisible();

  // A speaker joining later is seen and heard by the listener.
  const speaker = await joinCall(await newContext(), server, 'no-devices', 'Speaker', consoleErrors);
  await recordPeerConnections(page); // for later loads; this page's connections are below
  await expect(remoteTile(page, 'Speaker')).toBeVisible();
  await expect
    .poll(() => remoteTile(page, 'Speaker').locator('video').evaluate((v: HTMLVideoElement) => v.videoWidth), {
      timeout: 20_000,
    })
    .toBeGreaterThan(0);
  await expect(remoteTile(speaker, 'Listener').getByTestId('camera-off')).toBeVisible();
  await expect(remoteTile(speaker, 'Listener').getByTestId('mic-off')).toBeVisible();
});

test('the pre-join screen previews the camera, meters the microphone and lists devices', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const page = await openPage(await newContext(), `${server.url}/r/prejoin`, consoleErrors);
  await expect
    .poll(() => page.getByTestId('preview').evaluate((v: HTMLVideoElement) => v.videoWidth))
    .toBeGreaterThan(0);
  await expect(page.getByRole('combobox', { name: 'Camera' }).locator('option')).toHaveCount(3);
  await expect(page.getByRole('combobox', { name: 'Microphone' }).locator('option')).not.toHaveCount(0);
  // Labels are real device names once permission is granted.
  await expect(page.getByRole('combobox', { name: 'Camera' }).locator('option').first()).toHaveText(/fake_device/);
  // The fake microphone beeps; the meter moves at some point (audio starts after a click).
  await page.getByLabel('Your name').click();
  await expect
    .poll(() => page.getByTestId('mic-level').getAttribute('aria-valuenow').then(Number), { timeout: 10_000 })
    .toBeGreaterThan(0);
  // Turning the camera off before joining shows it is off.
  await page.getByRole('button', { name: 'Turn camera off' }).click();
  await expect(page.getByText('Camera is off')).toBeVisible();
  await page.getByRole('button', { name: 'Turn camera on' }).click();
  await expect(page.getByText('Camera is off')).toHaveCount(0);
});
