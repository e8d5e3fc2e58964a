// The meeting experience across real pages: screen sharing, the active speaker, raised
// hands, reactions, keyboard shortcuts, and the Korean and English interface.
import { test, expect, openPage, joinRoom } from './fixtures';
import { framesDecoded, joinCall, remoteTile } from './call-helpers';
import { speechWav, silenceWav, launchWithMicrophone } from './audio';



test('a shared screen arrives as a second video track in a presenter layout, and goes away when stopped', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  test.setTimeout(90_000);
  const ann = await joinCall(await newContext(), server, 'screens', 'Ann', consoleErrors);
  const bob = await joinCall(await newContext(), server, 'screens', 'Bob', consoleErrors);
  await expect(remoteTile(bob, 'Ann')).toHaveAttribute('data-link', 'connected');

  await ann.getByRole('button', { name: 'Share screen' }).click();
  await expect(ann.getByRole('button', { name: 'Stop sharing' })).toBeVisible();
  const screen = bob.locator('[data-testid="screen-tile"][data-name="Ann"]');
  await expect(screen).toBeVisible();
  await expect(screen).toHaveClass(/featured/);
  await expect(bob.getByTestId('tiles')).toHaveAttribute('data-layout', 'presenter');
  // Ann's camera stays visible beside her screen.
  await expect(remoteTile(bob, 'Ann')).toBeVisible();
  await expect.poll(() => screen.locator('video').evaluate((v: HTMLVideoElement) => v.videoWidth), { timeout: 20_000 }).toBe(1280);
  const first = await framesDecoded(bob, 'Ann', 'screen-tile');
  expect(first).toBeGreaterThan(0);
  await expect.poll(() => framesDecoded(bob, 'Ann', 'screen-tile')).toBeGreaterThan(first);
  // The screen is a second video track from Ann, besides her camera.
  const videoTracksFromAnn = await bob.evaluate(() =>
    ((window as any).__peerConnections as RTCPeerConnection[])
      .filter((pc) => pc.connectionState === 'connected')
      .flatMap((pc) => pc.getReceivers())
      .filter((r) => r.track?.kind === 'video' && r.track.readyState === 'live').length,
  );
  expect(videoTracksFromAnn).toBe(2);
  await expect(bob.getByTestId('people').locator('[aria-label="sharing screen"]')).toHaveCount(1);

  await ann.getByRole('button', { name: 'Stop sharing' }).click();
  await expect(screen).toHaveCount(0);
  await expect(bob.getByTestId('tiles')).toHaveAttribute('data-layout', 'grid');

  // Sharing again, then stopping from the browser's own "stop sharing" (the track ends).
  await ann.getByRole('button', { name: 'Share screen' }).click();
  await expect(screen).toBeVisible();
  await ann.evaluate(() => {
    for (const pc of (window as any).__peerConnections as RTCPeerConnection[]) {
      for (const sender of pc.getSenders()) {
        if (sender.track?.label.includes('screen') || sender.track?.getSettings().displaySurface) {
          sender.track.stop();
          sender.track.dispatchEvent(new Event('ended'));
        }
      }
    }
  });
  await expect(screen).toHaveCount(0);
  await expect(ann.getByRole('button', { name: 'Share screen' })).toBeVisible();
});

test('a speaking microphone makes that tile the active speaker on the other page', async ({ server }) => {
  test.setTimeout(90_000);
  const speakerBrowser = await launchWithMicrophone(speechWav());
  const listenerBrowser = await launchWithMicrophone(silenceWav());
  try {
    const errors: string[] = [];
    const ann = await joinCall(await speakerBrowser.newContext(), server, 'speakers', 'Ann', errors);
    const bob = await joinCall(await listenerBrowser.newContext(), server, 'speakers', 'Bob', errors);
    // Audio contexts start after an interaction, as for a person clicking around.
    await bob.getByTestId('tiles').click();
    await ann.getByTestId('tiles').click();

    await expect(remoteTile(bob, 'Ann')).toHaveAttribute('data-speaking', 'true', { timeout: 20_000 });
    await expect(bob.getByTestId('self-tile')).toHaveAttribute('data-speaking', 'false');
    await expect(ann.getByTestId('self-tile')).toHaveAttribute('data-speaking', 'true');
    await expect(remoteTile(ann, 'Bob')).toHaveAttribute('data-speaking', 'false');

    // The speaker layout puts the active speaker in the big tile.
    await bob.locator('summary[aria-label="More options"]').click();
    await bob.getByRole('menuitem', { name: 'Speaker layout' }).click();
    await expect(bob.getByTestId('tiles')).toHaveAttribute('data-layout', 'speaker');
    await expect(remoteTile(bob, 'Ann')).toHaveClass(/featured/);
    await bob.locator('summary[aria-label="More options"]').click();
    await bob.getByRole('menuitem', { name: 'Grid layout' }).click();
    await expect(bob.getByTestId('tiles')).toHaveAttribute('data-layout', 'grid');
    expect(errors).toEqual([]);
  } finally {
    await speakerBrowser.close();
    await listenerBrowser.close();
  }
});

test('raised hands are seen by everyone in the order raised; reactions appear on the other page', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinRoom(await newContext(), server, 'hands', 'Ann', consoleErrors);
  const bob = await joinRoom(await newContext(), server, 'hands', 'Bob', consoleErrors);
  const cat = await joinRoom(await newContext(), server, 'hands', 'Cat', consoleErrors);

  await cat.getByRole('button', { name: 'Raise hand' }).click();
  await ann.getByRole('button', { name: 'Raise hand' }).click();
  for (const page of [ann, bob, cat]) {
    await expect(page.getByTestId('hands').locator('li')).toHaveText(['✋ Cat', '✋ Ann']);
  }
  await expect(remoteTile(bob, 'Cat').getByTestId('hand')).toBeVisible();
  await expect(cat.getByRole('button', { name: 'Lower hand' })).toHaveAttribute('aria-pressed', 'true');

  await cat.getByRole('button', { name: 'Lower hand' }).click();
  await expect(bob.getByTestId('hands').locator('li')).toHaveText(['✋ Ann']);
  await expect(remoteTile(bob, 'Cat').getByTestId('hand')).toHaveCount(0);

  await ann.locator('summary[aria-label="Reactions"]').click();
  await ann.getByRole('button', { name: 'Reactions 🎉' }).click();
  await expect(bob.getByTestId('reactions')).toContainText('🎉');
  await expect(bob.getByTestId('reactions')).toContainText('Ann');
  // Reactions fade after a few seconds.
  await expect(bob.getByTestId('reactions').locator('.reaction')).toHaveCount(0, { timeout: 8_000 });
});

test('keyboard shortcuts toggle the microphone and camera and list themselves', async ({
  server,
  newContext,
  consoleErrors,
}) => {
  const ann = await joinCall(await newContext(), server, 'keys', 'Ann', consoleErrors);
  const bob = await joinCall(await newContext(), server, 'keys', 'Bob', consoleErrors);
  await ann.getByTestId('tiles').click();

  await ann.keyboard.press('m');
  await expect(ann.getByRole('button', { name: 'Unmute microphone' })).toBeVisible();
  await expect(remoteTile(bob, 'Ann').getByTestId('mic-off')).toBeVisible();
  await ann.keyboard.press('m');
  await expect(remoteTile(bob, 'Ann').getByTestId('mic-off')).toHaveCount(0);

  await ann.keyboard.press('v');
  await expect(ann.getByRole('button', { name: 'Turn camera on' })).toBeVisible();
  await expect(remoteTile(bob, 'Ann').getByTestId('camera-off')).toBeVisible();
  await ann.keyboard.press('v');
  await expect(remoteTile(bob, 'Ann').getByTestId('camera-off')).toHaveCount(0);

  await ann.keyboard.press('h');
  await expect(bob.getByTestId('hands').locator('li')).toHaveText(['✋ Ann']);

  // Typing in the chat does not trigger shortcuts.
  await ann.getByLabel('Message').fill('m v h');
  await expect(ann.getByRole('button', { name: 'Mute microphone' })).toBeVisible();
  await ann.getByLabel('Message').press('Enter');

  await ann.getByTestId('tiles').click();
  await ann.keyboard.press('?');
  const help = ann.getByTestId('shortcuts');
  await expect(help).toBeVisible();
  for (const text of ['Mute or unmute the microphone', 'Turn the camera on or off', 'Raise or lower your hand', 'Leave the meeting']) {
    await expect(help).toContainText(text);
  }
  await ann.keyboard.press('Escape');
  await expect(help).toBeHidden();

  // Every control has an accessible name.
  const unnamed = await ann.locator('.controls button, .controls select').evaluateAll((els) =>
    els.filter((el) => !(el.getAttribute('aria-label') || el.textContent?.trim())).length,
  );
  expect(unnamed).toBe(0);
});

test('the interface is in Korean for a Korean browser, and the switcher changes and keeps the language', async ({
  server,
  browser,
}) => {
  const errors: string[] = [];
  const context = await browser.newContext({ locale: 'ko-KR' });
  try {
    const home = await openPage(context, server.url, errors);
    await expect(home.locator('html')).toHaveAttribute('lang', 'ko');
    await expect(home.getByRole('button', { name: '새 회의 시작' })).toBeVisible();
    await expect(home.getByText('또는 이름으로 회의 참여')).toBeVisible();

    const room = await openPage(context, `${server.url}/r/hangul`, errors);
    await expect(room.getByLabel('이름', { exact: true })).toBeVisible();
    await expect(room.getByRole('button', { name: '참여', exact: true })).toBeVisible();
    await room.getByLabel('이름', { exact: true }).fill('민수');
    await room.getByRole('button', { name: '참여', exact: true }).click();
    await expect(room.getByRole('button', { name: '마이크 끄기' })).toBeVisible();
    await expect(room.getByRole('button', { name: '나가기' })).toBeVisible();
    await expect(room.getByTestId('participant-count')).toHaveText('1명');

    // Switching to English changes the labels at once…
    await room.getByTestId('language').selectOption('en');
    await expect(room.getByRole('button', { name: 'Mute microphone' })).toBeVisible();
    await expect(room.getByRole('button', { name: 'Leave' })).toBeVisible();
    await expect(room.locator('html')).toHaveAttribute('lang', 'en');
    // …and sticks: the next page load is English although the browser prefers Korean.
    const again = await openPage(context, server.url, errors);
    await expect(again.getByRole('button', { name: 'Start a new meeting' })).toBeVisible();
    await again.getByTestId('language').selectOption('ko');
    await expect(again.getByRole('button', { name: '새 회의 시작' })).toBeVisible();
    expect(errors).toEqual([]);
  } finally {
    await context.close();
  }
});
