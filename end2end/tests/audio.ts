// WAV files for Chromium's fake microphone (--use-file-for-fake-audio-capture): speech-like
// bursts that survive noise suppression (a steady tone is mostly removed), and silence.
import { chromium, Browser } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { chromiumArgs } from '../playwright.config';

const RATE = 48_000;

/** A browser whose fake microphone plays `wav` (from `speechWav` or `silenceWav`). */
export function launchWithMicrophone(wav: string): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...chromiumArgs, `--use-file-for-fake-audio-capture=${wav}`],
  });
}

function wav(samples: Float32Array): Buffer {
  const data = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => data.writeInt16LE(Math.round(Math.max(-1, Math.min(1, s)) * 32767), i * 2));
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(RATE, 24);
  header.writeUInt32LE(RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/** Ten seconds of syllable-like bursts: harmonics of a wobbling pitch, on for 180 ms, off 70. */
export function speechWav(): string {
  const samples = new Float32Array(RATE * 10);
  for (let i = 0; i < samples.length; i++) {
    const t = i / RATE;
    const syllable = (t * 4) % 1 < 0.72 ? 1 : 0;
    const pitch = 140 + 30 * Math.sin(2 * Math.PI * 3 * t);
    let voice = 0;
    for (let h = 1; h <= 6; h++) voice += Math.sin(2 * Math.PI * pitch * h * t) / h;
    const envelope = Math.sin(Math.PI * ((t * 4) % 1) / 0.72);
    samples[i] = 0.35 * syllable * envelope * voice;
  }
  return write('speech', samples);
}

export function silenceWav(): string {
  return write('silence', new Float32Array(RATE * 10));
}

function write(name: string, samples: Float32Array): string {
  const file = path.join(os.tmpdir(), `room-e2e-${name}.wav`);
  fs.writeFileSync(file, wav(samples));
  return file;
}
