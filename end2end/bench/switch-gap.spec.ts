// The video gap a viewer sees when a call switches between browser to browser and through the
// server (--media auto --mesh-max 2): Ann watches Bob's tile while Cat joins (mesh → server)
// and leaves again (server → mesh); the gap is the longest time between two frames of Bob's
// video presented on Ann's screen (requestVideoFrameCallback). Three rounds. MESH_MAX=3 runs
// the same joins and leaves with no switch at all: the gap a third page's start costs on
// these two cores, the baseline to read the switch's own share against.
import { Page } from '@playwright/test';
import { test, expect, startServer } from '../tests/fixtures';
import { joinCall, remoteTile, expectVideoFlowing } from '../tests/call-helpers';

const ROUNDS = 3;

/** Starts logging when each frame of `name`'s tile video is presented. */
async function watchFrames(page: Page, name: string): Promise<void> {
  await remoteTile(page, name)
    .locator('video')
    .evaluate((video: HTMLVideoElement) => {
      const w = window as any;
      w.__frames = [];
      const tick = (now: number) => {
        w.__frames.push(now);
        video.requestVideoFrameCallback(tick);
      };
      video.requestVideoFrameCallback(tick);
    });
}

/** The longest time between two presented frames since `watchFrames`. */
async function longestGap(page: Page): Promise<number> {
  return page.evaluate(() => {
    const frames = (window as any).__frames as number[];
    let gap = 0;
    for (let i = 1; i < frames.length; i++) gap = Math.max(gap, frames[i] - frames[i - 1]);
    return gap;
  });
}

async function openConnections(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      ((window as any).__peerConnections as RTCPeerConnection[]).filter((pc) => pc.connectionState !== 'closed')
        .length,
  );
}

test('video gap while a call switches between browser to browser and through the server', async ({ browser }) => {
  test.setTimeout(300_000);
  const meshMax = process.env.MESH_MAX ?? '2';
  const server = await startServer(['--media', 'auto', '--mesh-max', meshMax, '--media-addr', '127.0.0.1:0']);
  // Through the server one connection; still browser to browser, one per other member.
  const connections = meshMax === '2' ? 1 : 2;
  const errors: string[] = [];
  try {
    const ann = await joinCall(await browser.newContext(), server, 'gap', 'Ann', errors);
    await joinCall(await browser.newContext(), server, 'gap', 'Bob', errors);
    await expectVideoFlowing(ann, 'Bob');
    const up: number[] = [];
    const down: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await watchFrames(ann, 'Bob');
      const context = await browser.newContext();
      const cat = await joinCall(context, server, 'gap', 'Cat', errors);
      await expect.poll(() => openConnections(ann)).toBe(connections);
      await expectVideoFlowing(ann, 'Cat');
      await ann.waitForTimeout(2_000);
      up.push(await longestGap(ann));

      await watchFrames(ann, 'Bob');
      await cat.getByRole('button', { name: 'Leave' }).click();
      await expect(remoteTile(ann, 'Cat')).toHaveCount(0);
      await ann.waitForTimeout(3_000);
      await expectVideoFlowing(ann, 'Bob');
      down.push(await longestGap(ann));
      await context.close();
      console.log(`round ${round + 1}: mesh → server ${up[round].toFixed(0)} ms, server → mesh ${down[round].toFixed(0)} ms`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(
      `switch gap over ${ROUNDS} rounds: mesh → server median ${median(up).toFixed(0)} ms (max ${Math.max(...up).toFixed(0)}), server → mesh median ${median(down).toFixed(0)} ms (max ${Math.max(...down).toFixed(0)})`,
    );
  } finally {
    await server.stop();
  }
});
