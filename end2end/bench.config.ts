// Benchmarks in real Chromium, kept out of the test suite: `npx playwright test --config bench.config.ts`.
import { defineConfig } from '@playwright/test';
import base from './playwright.config';

export default defineConfig({
  ...base,
  testDir: './bench',
  timeout: 180_000,
  reporter: [['list']],
});
