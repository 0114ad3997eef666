import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { Agent, get } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_EXIT_CODE } from '../../src/cli/gateway-commands.js';
import type { RuntimeKind } from '../../src/executors/runtime.js';
import { readGateway } from '../../src/jobs/gateway/registration.js';
import { DEFAULT_PREFIX } from '../../src/jobs/keys.js';
import { stevedore, useCliWorld } from '../helpers/cli.js';
import type { HostConfig } from '../helpers/gateway-host.js';
import { type GatewayHost, startGatewayHost } from '../helpers/gateway-host-process.js';
import { podmanMissing } from '../helpers/podman.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, Harness, until } from '../helpers/stevedore.js';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs.js';

/**
 * The gateway's client side end to end: the `stevedore` CLI in its own process, a gateway host
 * (a worker's gateway half: real container, real server, entry in Redis) in another.
 */
const world = useCliWorld('stevedore-gateway-cli-');
const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const singularityBin = await testSingularityBin();

const RUNTIMES: { kind: RuntimeKind; missing: string | null }[] = [
  { kind: 'docker', missing: null },
  { kind: 'podman', missing: podmanMissing() },
  {
    kind: 'singularity',
    missing: singularityBin ? null : 'neither apptainer nor singularity is installed (scripts/setup.sh test)',
  },
];

let jobs = 0;
const jobName = (kind: string) => `gw-${kind}-${process.pid}-${++jobs}`;

async function host(
  kind: RuntimeKind,
  options: { network?: boolean; command?: string[] } & Pick<HostConfig, 'tls' | 'keepalive'> = {},
) {
  const jobId = jobName(kind);
  const started = await startGatewayHost({
    runtime: kind,
    singularityBin: singularityBin ?? undefined,
    redisUrl: world.redis.url,
    queue: world.h.queue,
    jobId,
    network: options.network ?? false,
    command: options.command ?? ['sleep', '3600'],
    testName: `gateway-cli ${kind}`,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.keepalive ? { keepalive: options.keepalive } : {}),
  });
  return { jobId, host: started };
}

for (const { kind, missing } of RUNTIMES) {
  describe.skipIf(missing !== null)(`stevedore exec on ${kind}`, () => {
    if (missing) console.warn(`[skip] gateway CLI on ${kind}: ${missing}`);
    let jobId = '';
    let gateway: GatewayHost | undefined;
    beforeAll(async () => {
      ({ jobId, host: gateway } = await host(kind));
    }, 180_000);
    afterAll(async () => {
      await gateway?.stop();
    });

    it("gives the command's exit code as its own: 0, 3 and 127", async () => {
      const run = (command: string[]) => stevedore(['exec', jobId, '--', ...command], { env: world.env });
      const [ok, three, missingProgram] = await Promise.all([
        run(['true']),
        run(['sh', '-c', 'exit 3']),
        run(['/no/such/program']),
      ]);
      expect([ok.exitCode, three.exitCode, missingProgram.exitCode], `${missingProgram.stderr}`).toEqual([
        0, 3, 127,
      ]);
    });

    it('keeps stdout and stderr apart, and carries 1 MB of binary stdin byte-exact', async () => {
      const apart = await stevedore(['exec', jobId, '--', 'sh', '-c', 'echo out; echo err >&2'], {
        env: world.env,
      });
      expect([apart.stdout, apart.stderr, apart.exitCode]).toEqual(['out', 'err', 0]);
      const input = randomBytes(1024 * 1024);
      const piped = await stevedore(['exec', '-i', jobId, '--', 'cat'], {
        env: world.env,
        input,
        encoding: 'buffer',
        stripFinalNewline: false,
      });
      const output = Buffer.from(piped.stdout as unknown as Uint8Array);
      const firstDifference = output.findIndex((byte, i) => byte !== input[i]);
      expect({ exitCode: piped.exitCode, bytes: output.length, firstDifference }).toEqual({
        exitCode: 0,
        bytes: input.length,
        firstDifference: -1,
      });
    });

    it("shell opens the image's shell (busybox: /bin/sh) on a terminal, and exits with its code", async () => {
      // As a person at a terminal does: type once the prompt is there, end the line with Enter
      // (\r), and keep stdin open (busybox's line editor asks where the cursor is, ESC[6n, and a
      // stdin closed at once ends the terminal's input before the shell reads it).
      const shell = stevedore(['shell', jobId], { env: world.env, timeout: 30_000 });
      const output = collect(shell.stdout);
      // A prompt: busybox's `# ` or `$ `, or Apptainer's own PS1 (`Apptainer> `), which its exec keeps.
      await until(async () => /[#$>] /.test(output()), 20_000);
      shell.stdin?.write('echo shell-$((2+3)); exit 5\r');
      const ended = await shell;
      expect(ended.exitCode, `${output()} ${String(ended.stderr)}`).toBe(5);
      expect(output()).toMatch(/shell-5/);
    });

    it('-t gives a terminal that follows a resize of the local one (stty size, through a pty)', async () => {
      // `script` makes the pty (30 rows at first). Once the CLI's session with the gateway is
      // open (its connection shows in ss), the shell inside the pty resizes that terminal, which
      // sends SIGWINCH to the CLI; the command waits until it sees the 40 rows only a resize gives.
      // stty applies `cols` and `rows` as two window sizes, one after the other (two SIGWINCHes),
      // and the CLI may read the size between them: cols goes first, so 40 rows always come with
      // the new width (rows first let the CLI send 40 x 100 now and then).
      const command = 'until stty size | grep -q "^40 "; do sleep 0.1; done; echo then $(stty size)';
      const cli = `${process.execPath} --import tsx ${MAIN} exec -t ${jobId} -- sh -c '${command}'`;
      const open = `ss -Htn state established "( dport = :${gateway?.port} )" | grep -q .`;
      const outer = `stty rows 30 cols 100; ${cli} & pid=$!; until ${open}; do sleep 0.1; done; i=0; while kill -0 $pid 2>/dev/null; do i=$((i+1)); stty cols $((100+i)) rows 40; sleep 0.5; done; wait $pid`;
      const result = await execa('script', ['-qfec', outer, '/dev/null'], {
        env: world.env,
        reject: false,
        timeout: 60_000,
      });
      expect(result.exitCode, result.stdout).toBe(0);
      const then = /then (\d+) (\d+)/.exec(result.stdout);
      expect(then?.[1], result.stdout).toBe('40');
      expect(Number(then?.[2])).toBeGreaterThan(100);
    });
  });
}

for (const { kind, missing } of RUNTIMES) {
  describe.skipIf(missing !== null)(`stevedore port-forward on ${kind}`, () => {
    it('forwards 20 HTTP requests, 5 connections at a time, to a server in the job', async () => {
      const { jobId, host: gateway } = await host(kind, {
        network: true,
        command: [
          'sh',
          '-c',
          'mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
        ],
      });
      const forward = stevedore(['port-forward', jobId, ':8080'], { env: world.env, buffer: false });
      try {
        const port = await forwardedPort(forward);
        const agent = new Agent({ maxSockets: 5 });
        const bodies = await Promise.all(
          Array.from({ length: 20 }, () => httpGet(`http://127.0.0.1:${port}/index.html`, agent)),
        );
        agent.destroy();
        expect(bodies).toEqual(Array.from({ length: 20 }, () => 'hello\n'));
      } finally {
        forward.kill('SIGINT');
        const ended = await forward;
        await gateway.stop();
        expect(ended.exitCode).toBe(0);
      }
    }, 180_000);

    it('refuses a job without network clearly, and exits non-zero', async () => {
      const { jobId, host: gateway } = await host(kind, { network: false });
      const forward = stevedore(['port-forward', jobId, ':8080'], { env: world.env, buffer: false });
      const stderr = collect(forward.stderr);
      try {
        const port = await forwardedPort(forward);
        // The job is not in this queue's BullMQ (the host only registers its gateway), so the
        // worker's side refuses the first connection, and the CLI ends on it.
        await httpGet(`http://127.0.0.1:${port}/`, new Agent()).catch(() => undefined);
        const ended = await forward;
        expect(ended.exitCode).toBe(1);
        expect(stderr()).toMatch(/has no network: its loopback is its own/);
      } finally {
        forward.kill('SIGKILL');
        await gateway.stop();
      }
    }, 180_000);
  });
}

describe('a session that loses its worker, or its job (docker)', () => {
  it('exits 255 and says the session ended without an exit code when the worker is SIGKILLed', async () => {
    const { jobId, host: gateway } = await host('docker');
    const exec = stevedore(['exec', jobId, '--', 'sh', '-c', 'echo started; exec sleep 60'], {
      env: world.env,
      buffer: false,
    });
    const stderr = collect(exec.stderr);
    await new Promise<void>((resolve) => exec.stdout?.once('data', () => resolve()));
    await gateway.kill();
    const ended = await exec;
    expect(ended.exitCode).toBe(NO_EXIT_CODE);
    expect(stderr()).toMatch(/ended without an exit code: .*the command's fate is unknown/);
  }, 180_000);

  it('exits 255 and says the job ended when it ends during the exec', async () => {
    const { jobId, host: gateway } = await host('docker', { command: ['sleep', '5'] });
    try {
      const ended = await stevedore(['exec', jobId, '--', 'sleep', '60'], { env: world.env });
      expect(ended.exitCode).toBe(NO_EXIT_CODE);
      expect(ended.stderr).toMatch(/no exit code: job .* ended while the command ran/);
    } finally {
      await gateway.stop();
    }
  }, 180_000);
});

describe('a gateway served over TLS, with short pings (docker)', () => {
  let certs: TestCerts;
  let jobId = '';
  let gateway: GatewayHost | undefined;
  const keepalive = { pingMs: 500, peerTimeoutMs: 2_000 };
  beforeAll(async () => {
    certs = await makeTestCerts();
    ({ jobId, host: gateway } = await host('docker', {
      tls: { cert: certs.serverCert, key: certs.serverKey },
      keepalive,
      network: true,
      command: [
        'sh',
        '-c',
        'mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
      ],
    }));
  }, 180_000);
  afterAll(async () => {
    await gateway?.stop();
    if (certs) await rm(certs.dir, { recursive: true, force: true });
  });

  it('exec without the CA exits 255 and says to give it (STEVEDORE_GATEWAY_TLS_CA, --gateway-tls-ca)', async () => {
    const refused = await stevedore(['exec', jobId, '--', 'true'], { env: world.env });
    expect(refused.exitCode).toBe(NO_EXIT_CODE);
    expect(refused.stderr).toMatch(
      /^stevedore: exec: gateway 127\.0\.0\.1:\d+ of job .* did not open a session: its TLS certificate is not trusted here .*STEVEDORE_GATEWAY_TLS_CA=FILE \(the CLI's --gateway-tls-ca FILE/,
    );
  });

  it("exec with the CA, by flag or by variable, gives the command's exit code", async () => {
    const byFlag = await stevedore(
      ['exec', '--gateway-tls-ca', certs.ca, jobId, '--', 'sh', '-c', 'echo over-tls; exit 3'],
      { env: world.env },
    );
    expect([byFlag.stdout, byFlag.exitCode]).toEqual(['over-tls', 3]);
    const byVariable = await stevedore(['exec', jobId, '--', 'sh', '-c', 'exit 4'], {
      env: { ...world.env, STEVEDORE_GATEWAY_TLS_CA: certs.ca },
    });
    expect(byVariable.exitCode).toBe(4);
  });

  it("keeps a quiet exec open past both sides' 2 s silent-peer limit (STEVEDORE_GATEWAY_PING_MS, _PEER_TIMEOUT_MS)", async () => {
    const quiet = await stevedore(
      ['exec', '--gateway-tls-ca', certs.ca, jobId, '--', 'sh', '-c', 'sleep 6; echo late; exit 9'],
      {
        env: {
          ...world.env,
          STEVEDORE_GATEWAY_PING_MS: String(keepalive.pingMs),
          STEVEDORE_GATEWAY_PEER_TIMEOUT_MS: String(keepalive.peerTimeoutMs),
        },
      },
    );
    expect([quiet.stdout, quiet.exitCode], String(quiet.stderr)).toEqual(['late', 9]);
  });

  it('port-forward without the CA ends at the first connection with exit 1, saying why', async () => {
    const forward = stevedore(['port-forward', jobId, ':8080'], { env: world.env, buffer: false });
    const stderr = collect(forward.stderr);
    try {
      const port = await forwardedPort(forward);
      await httpGet(`http://127.0.0.1:${port}/`, new Agent()).catch(() => undefined);
      const ended = await forward;
      expect(ended.exitCode).toBe(1);
      expect(stderr()).toMatch(/its TLS certificate is not trusted here .*STEVEDORE_GATEWAY_TLS_CA/);
    } finally {
      forward.kill('SIGKILL');
    }
  }, 60_000);
});

describe('against a real `stevedore worker` process (docker)', () => {
  it('execs into a job the worker runs with STEVEDORE_GATEWAY on, then says the job has finished', async () => {
    const port = await freePort();
    const worker = stevedore(['worker', '--gateway', `127.0.0.1:${port}`], { env: world.env });
    const client = world.h.client();
    try {
      const { id } = await client.submit(busybox(['sleep', '3600']), { attempts: 1 });
      const address = { queue: world.h.queue, prefix: DEFAULT_PREFIX };
      const raw = new Redis(world.redis.url);
      raw.on('error', () => undefined); // a failed read rejects; the event adds nothing
      await until(() => readGateway(raw, address, id), 60_000).finally(() => raw.disconnect());
      const ran = await stevedore(['exec', id, '--', 'sh', '-c', 'echo $((1+2)); echo apart >&2; exit 3'], {
        env: world.env,
      });
      expect([ran.stdout, ran.stderr, ran.exitCode]).toEqual(['3', 'apart', 3]);
      await client.cancel(id);
      await client.waitForResult(id, { timeoutMs: 60_000 });
      const after = await stevedore(['exec', id, '--', 'true'], { env: world.env });
      expect(after.exitCode).toBe(NO_EXIT_CODE);
      expect(after.stderr).toMatch(/job .* has finished: exec and port-forward reach running jobs only/);
    } finally {
      worker.kill('SIGTERM');
      await worker;
    }
  }, 180_000);

  it('names the worker and the setting when the job runs on a worker without a gateway', async () => {
    const other = new Harness(world.redis);
    try {
      await other.worker();
      const client = other.client();
      const { id } = await client.submit(busybox(['sleep', '3600']), { attempts: 1 });
      await until(async () => (await client.getProgress(id))?.phase === 'running', 60_000);
      const refused = await stevedore(['exec', '--queue', other.queue, id, '--', 'true'], { env: world.env });
      expect(refused.exitCode).toBe(NO_EXIT_CODE);
      expect(refused.stderr).toMatch(
        /runs on worker test-worker-1-\d+, which serves no gateway: start that worker with STEVEDORE_GATEWAY=host:port/,
      );
      await client.cancel(id);
      await client.waitForResult(id, { timeoutMs: 60_000 });
    } finally {
      await other.close();
    }
  }, 180_000);
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function collect(stream: NodeJS.ReadableStream | null | undefined): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return () => text;
}

/** The local port from the CLI's "Forwarding 127.0.0.1:PORT -> …" line. */
function forwardedPort(forward: ReturnType<typeof stevedore>): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    forward.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    forward.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /Forwarding 127\.0\.0\.1:(\d+) -> job/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    void forward.then(() => reject(new Error(`port-forward ended before listening: ${err}`)));
  });
}

function httpGet(url: string, agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () => resolve(body));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}
