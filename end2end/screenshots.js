// Takes the README's screenshots from a running server: node screenshots.js [URL] [OUT_DIR]
// Not part of the test suite; run it after UI changes (scripts/screenshots.sh starts a server).
const { chromium } = require('playwright');
const path = require('node:path');
const chromiumArgs = require('./chromium-args.json');

async function main() {
  const base = process.argv[2] ?? 'http://127.0.0.1:3000';
  const out = process.argv[3] ?? path.join(__dirname, '..', 'docs', 'screenshots');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  const viewport = { width: 1280, height: 800 };
  const join = async (room, name, size = viewport) => {
    const context = await browser.newContext({ viewport: size });
    const page = await context.newPage();
    await page.goto(`${base}/r/${room}`);
    await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
    await page.getByLabel('Your name').fill(name);
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.getByTestId('participant-count').waitFor();
    return page;
  };
  const say = async (page, text) => {
    await page.getByLabel('Message').fill(text);
    await page.getByLabel('Message').press('Enter');
    await page.waitForTimeout(150);
  };

  const ann = await join('design-review', 'Ann Lee');
  const min = await join('design-review', '김민수');
  await say(ann, 'Morning! Shall we go through the new onboarding flow?');
  await say(min, 'Yes — I pushed the latest mockups an hour ago.');
  await say(ann, 'Great, sharing my screen in a second.');
  await ann.screenshot({ path: path.join(out, 'meeting.png') });
  const phone = await join('design-review', 'Sam', { width: 390, height: 760 });
  await phone.screenshot({ path: path.join(out, 'meeting-phone.png') });

  const homeContext = await browser.newContext({ viewport });
  const home = await homeContext.newPage();
  await home.goto(base);
  await home.waitForFunction(() => document.documentElement.dataset.hydrated === 'true');
  await home.screenshot({ path: path.join(out, 'home.png') });
  await browser.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
