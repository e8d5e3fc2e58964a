// Time from joining a call to connected, between two simulated homes, through Room's built-in
// relay and through coturn (Debian's `turnserver`, same machine, same cases), three runs each;
// prints the medians for docs/BENCHMARKS.md. Root only (network namespaces); run by
// `scripts/bench.sh nat`.
import { Browser } from '@playwright/test';
import { spawn, ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';

import { test, startServer, RoomServer } from '../tests/fixtures';
import { PUBLIC_IP, topo, homeBrowser, callBetweenHomes } from '../tests/nat-helpers';

// NAT_RUNS and NAT_CASE (a part of a case's name) narrow a run down.
const RUNS = Number(process.env.NAT_RUNS ?? 5);
const COTURN_PORT = 3479;

test.skip(process.getuid?.() !== 0, 'needs root (network namespaces)');

/** coturn in the public namespace with TURN REST credentials, as Room's relay uses. */
function startCoturn(secret: string): ChildProcess {
  return spawn(
    'ip',
    [
      'netns', 'exec', 'np-pub', 'turnserver', '-n',
      '--listening-ip', PUBLIC_IP, '--listening-port', String(COTURN_PORT),
      '--relay-ip', PUBLIC_IP, '--min-port', '50000', '--max-port', '50999',
      '--realm', 'room', '--use-auth-secret', `--static-auth-secret=${secret}`,
      '--no-cli', '--no-tls', '--no-dtls', '--log-file', 'stdout', '--simple-log',
    ],
    { stdio: 'ignore' },
  );
}

/** A TURN REST username and password valid for an hour. */
function restCredentials(secret: string): [string, string] {
  const username = `${Math.floor(Date.now() / 1000) + 3600}:bench`;
  const password = crypto.createHmac('sha1', secret).update(username).digest('base64');
  return [username, password];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

test('connection time through simulated NATs: Room relay vs coturn', async ({ consoleErrors }) => {
  test.setTimeout(600_000);
  topo('down');
  topo('up');
  const secret = crypto.randomBytes(32).toString('hex');
  const coturn = startCoturn(secret);
  const [username, password] = restCredentials(secret);
  const servers: Record<string, RoomServer> = {
    room: await startServer(['--public-ip', PUBLIC_IP, '--media', 'mesh', '--metrics-addr', 'off'], {
      addr: `${PUBLIC_IP}:3000`,
      netns: 'np-pub',
    }),
    coturn: await startServer(
      [
        '--turn', 'off', '--media', 'mesh', '--public-ip', PUBLIC_IP, '--metrics-addr', 'off',
        '--ice-servers',
        `turn:${PUBLIC_IP}:${COTURN_PORT}?transport=udp,turn:${PUBLIC_IP}:${COTURN_PORT}?transport=tcp`,
        '--ice-username', username, '--ice-credential', password,
      ],
      { addr: `${PUBLIC_IP}:3004`, netns: 'np-pub' },
    ),
  };
  const browsers: Browser[] = [await homeBrowser(1), await homeBrowser(2)];
  const cases: [string, () => void, () => void][] = [
    ['symmetric NAT <-> cone NAT', () => { topo('nat1', 'cone'); topo('nat2', 'symmetric'); }, () => {}],
    ['symmetric <-> symmetric', () => { topo('nat1', 'symmetric'); topo('nat2', 'symmetric'); }, () => {}],
    [
      'UDP blocked in one home',
      () => { topo('nat1', 'cone'); topo('nat2', 'symmetric'); topo('udp', 'home1', 'block'); },
      () => topo('udp', 'home1', 'allow'),
    ],
  ];
  const rows: string[] = [];
  try {
    for (const [index, [name, setUp, tearDown]] of cases.entries()) {
      if (process.env.NAT_CASE && !name.includes(process.env.NAT_CASE)) continue;
      const times: Record<string, number[]> = { room: [], coturn: [] };
      const paths: Record<string, string> = {};
      setUp();
      try {
        for (let run = 0; run < RUNS; run++) {
          for (const relay of ['room', 'coturn']) {
            topo('flush');
            const result = await callBetweenHomes(servers[relay], browsers, `${relay}-${index}-${run}`, consoleErrors);
            times[relay].push(result.connectedMs);
            paths[relay] = `${result.paths.ann} / ${result.paths.bob}`;
          }
        }
      } finally {
        tearDown();
      }
      rows.push(
        `| ${name} | ${median(times.room)} ms (${times.room.join(', ')}) | ${median(times.coturn)} ms (${times.coturn.join(', ')}) | ${paths.room} |`,
      );
    }
  } finally {
    for (const browser of browsers) await browser.close();
    for (const server of Object.values(servers)) await server.stop();
    coturn.kill();
    topo('down');
  }
  console.log(
    ['', '| case | Room relay, median (runs) | coturn, median (runs) | path (Ann / Bob) |', '|---|---|---|---|', ...rows].join('\n'),
  );
});
