// Takes the README's screenshots from a running server: node screenshots.js [URL] [OUT_DIR]
// Not part of the test suite; run it after UI changes against a release build started with
// --public-room-list (the home page shot shows the list). Emoji and
// Korean text need fonts (Debian: fonts-noto-color-emoji fonts-noto-cjk).
const { chromium } = require('playwright');
const path = require('node:path');
const chromiumArgs = require('./chromium-args.json');

async function main() {
  const base = process.argv[2] ?? 'http://127.0.0.1:3000';
  const out = process.argv[3] ?? path.join(__dirname, '..', 'docs', 'screenshots');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  const viewport = { width: 1280, height: 800 };
  const join = async (room, name, options = {}, panels = false) => {
    const context = await browser.newContext({ viewport, ...options });
    if (panels) {
      await context.addInitScript(() => {
        localStorage.setItem('room.panel.chat', 'true');
        localStorage.setItem('room.panel.people', 'true');
      });
    }
    const page = await context.newPage();
    await page.goto(`${base}/r/${room}`);
    await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
    await page.locator('#display-name').fill(name);
    await page.locator('.join-pane button[type=submit]').click();
    await page.getByTestId('self-tile').waitFor();
    return page;
  };
  const say = async (page, text) => {
    await page.locator('input[name=message]').fill(text);
    await page.locator('input[name=message]').press('Enter');
    await page.waitForTimeout(200);
  };
  const more = async (page, item) => {
    await page.locator('summary[aria-label="More options"]').click();
    await page.getByRole('menuitem', { name: item }).click();
  };

  const ann = await join('design-review', 'Ann Lee', {}, true);
  // Ann is the host: her banner shows the host link once; closed for the meeting shots.
  await ann.getByTestId('host-notice').getByRole('button').click();
  const min = await join('design-review', '김민수', {}, true);
  const sam = await join('design-review', 'Sam Ortiz', {}, true);
  const lee = await join('design-review', 'Lee Park');
  for (const name of ['Priya Nair', 'Tomás Ruiz']) {
    const page = await join('design-review', name);
    await page.getByRole('button', { name: 'Turn camera off' }).click();
  }
  await say(ann, 'Morning! Shall we go through the new onboarding flow?');
  await say(min, 'Yes — I pushed the latest mockups an hour ago.');
  await say(sam, 'Sharing my screen in a second.');
  await min.getByRole('button', { name: 'Raise hand' }).click();
  await sam.getByRole('button', { name: 'Mute microphone' }).click();
  // The grid of six, panels closed: the stage fills the window.
  await lee.waitForTimeout(3000);
  await lee.screenshot({ path: path.join(out, 'meeting.png') });

  await more(ann, 'Speaker layout');
  await ann.waitForTimeout(1000);
  await ann.screenshot({ path: path.join(out, 'speaker.png') });
  await more(ann, 'Grid layout');

  await sam.getByRole('button', { name: 'Share screen' }).click();
  await ann.getByTestId('screen-tile').waitFor();
  await ann.locator('summary[aria-label="Reactions"]').click();
  await ann.getByRole('button', { name: 'Reactions 👏' }).click();
  await ann.locator('summary[aria-label="Reactions"]').click();
  await ann.waitForTimeout(2000);
  await ann.screenshot({ path: path.join(out, 'screen-share.png') });
  await sam.getByRole('button', { name: 'Stop sharing' }).click();

  // The host's tools: someone waiting to be let in, and the actions for one participant.
  await ann.getByTestId('host-waiting-room').check();
  const late = await (await browser.newContext({ viewport })).newPage();
  await late.goto(`${base}/r/design-review`);
  await late.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await late.locator('#display-name').fill('Jo Kim');
  await late.locator('.join-pane button[type=submit]').click();
  await ann.getByTestId('waiting-list').waitFor();
  await ann.getByTestId('people').locator('.person', { hasText: 'Sam Ortiz' }).locator('summary').click();
  await ann.waitForTimeout(500);
  await ann.screenshot({ path: path.join(out, 'hosts.png') });
  await ann.getByTestId('people').locator('.person', { hasText: 'Sam Ortiz' }).locator('summary').click();
  await ann.getByTestId('host-admit-all').click();
  await ann.getByTestId('host-waiting-room').uncheck();

  // Breakout rooms planned: everyone split over two rooms, ready to open.
  await ann.getByTestId('breakout-panel').locator('summary').click();
  await ann.getByTestId('breakout-split').click();
  await ann.getByTestId('breakout-panel').scrollIntoViewIfNeeded();
  await ann.waitForTimeout(300);
  await ann.screenshot({ path: path.join(out, 'breakouts.png') });

  const phone = await join('design-review', 'Kim', { viewport: { width: 390, height: 760 }, locale: 'ko-KR' });
  await phone.waitForTimeout(2500);
  await phone.screenshot({ path: path.join(out, 'meeting-phone.png') });

  const home = await (await browser.newContext({ viewport })).newPage();
  await home.goto(base);
  await home.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await home.screenshot({ path: path.join(out, 'home.png') });
  await browser.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
