// Playwright drives Debian's Chromium (never a downloaded browser) with fake camera and
// microphone. Each test starts its own Room server on a free loopback port (see fixtures.ts),
// so tests can choose server flags and restart servers without sharing state.
import { defineConfig } from '@playwright/test';

import chromiumArgs from './chromium-args.json';

export { chromiumArgs };

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  // Two cores: one worker keeps browser pages and the server from starving each other.
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: chromiumArgs,
    },
    trace: 'retain-on-failure',
  },
});
