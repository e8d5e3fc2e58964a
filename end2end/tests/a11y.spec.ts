// Accessibility: axe-core's WCAG 2.1 A and AA rules on the home page, the pre-join screen and
// a meeting (in the call, chat and people open, a menu open), in English and in Korean. No
// serious or critical violation may appear.
import AxeBuilder from '@axe-core/playwright';
import { expect, type Page } from '@playwright/test';
import { openPage, test } from './fixtures';

async function seriousViolations(page: Page, where: string): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${where}: ${v.id} (${v.impact}) on ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

for (const [language, locale, join, people] of [
  ['English', 'en-US', 'Join', 'Show people'],
  ['Korean', 'ko-KR', '참여', '참여자 보기'],
] as const) {
  test(`home, pre-join and meeting pages have no serious accessibility violations (${language})`, async ({
    server,
    browser,
    consoleErrors,
  }) => {
    const context = await browser.newContext({ locale });
    try {
      const found: string[] = [];
      const home = await openPage(context, server.url, consoleErrors, { panelsOpen: false });
      found.push(...(await seriousViolations(home, 'home')));

      const page = await openPage(context, `${server.url}/r/accessible`, consoleErrors, { panelsOpen: false });
      await expect.poll(() => page.getByTestId('preview').evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
      found.push(...(await seriousViolations(page, 'pre-join')));

      await page.locator('#display-name').fill('Ann');
      await page.getByRole('button', { name: join, exact: true }).click();
      await expect(page.getByTestId('self-tile')).toBeVisible();
      found.push(...(await seriousViolations(page, 'meeting')));
      await page.getByTestId('chat-toggle').click();
      await page.getByRole('button', { name: people }).click();
      await page.locator('.more-menu > summary').click();
      found.push(...(await seriousViolations(page, 'meeting with panels and a menu open')));
      expect(found).toEqual([]);
    } finally {
      await context.close();
    }
  });
}
