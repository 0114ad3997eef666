import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stevedore, useCliWorld } from '../helpers/cli.js';
import { TEST_IMAGE, testImageTarball } from '../helpers/docker.js';
import { busybox } from '../helpers/stevedore.js';

describe('stevedore CLI', () => {
  const world = useCliWorld('stevedore-cli-');

  it('prints help and exits 0; a usage error is one line and exits 2', async () => {
    const help = await stevedore(['--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('Usage: stevedore <command>');
    const submitHelp = await stevedore(['submit', '--help']);
    expect(submitHelp.stdout).toContain('--image IMAGE');
    const bad = await stevedore(['submit', '--no-such-flag'], { env: world.env });
    expect(bad.exitCode).toBe(2);
    expect(String(bad.stderr).trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^stevedore: .*--no-such-flag/);
    const unknown = await stevedore(['frobnicate']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toBe('stevedore: unknown command "frobnicate"; run "stevedore --help"');
  });

  it('a worker process runs `submit --wait` jobs and exits with the container exit code; SIGTERM stops it cleanly', async () => {
    const worker = stevedore(['worker', '--concurrency', '2', '--log-level', 'info'], { env: world.env });
    try {
      const submit = await stevedore(
        [
          'submit',
          '--image',
          TEST_IMAGE,
          '--image-tarball',
          testImageTarball(),
          '--env',
          'WHO=cli',
          '--wait',
          '--',
          'sh',
          '-c',
          'echo "hi $WHO"; exit 7',
        ],
        { env: world.env },
      );
      expect(submit.exitCode).toBe(7);
      const result = JSON.parse(String(submit.stdout));
      expect(result).toMatchObject({ state: 'Complete', exitCode: 7, stdout: { tail: 'hi cli\n' } });

      const specFile = join(world.dir, 'spec.yaml');
      await writeFile(
        specFile,
        `image: ${TEST_IMAGE}\nimageTarball: ${testImageTarball()}\ncommand: [sleep, "30"]\n`,
      );
      const submitted = await stevedore(['submit', specFile], { env: world.env });
      expect(submitted.exitCode).toBe(0);
      const id = String(submitted.stdout).trim();
      let status = { finished: false, phase: '' };
      for (let i = 0; i < 100 && status.phase !== 'running'; i++) {
        status = JSON.parse(String((await stevedore(['status', id], { env: world.env })).stdout));
      }
      expect(status.phase).toBe('running');
      const pending = await stevedore(['result', id], { env: world.env });
      expect(pending.exitCode).toBe(3);
      const cancel = await stevedore(['cancel', id], { env: world.env });
      expect(cancel.stdout).toBe(`job ${id} is running: its worker is stopping it`);
      for (let i = 0; i < 100; i++) {
        const r = await stevedore(['result', id], { env: world.env });
        if (r.exitCode === 0) {
          expect(JSON.parse(String(r.stdout))).toMatchObject({ state: 'Cancelled', reason: 'cancelled' });
          break;
        }
      }
      const invalid = await stevedore(['submit', '--image', TEST_IMAGE, '--vcpus=-2', '--', 'true'], {
        env: world.env,
      });
      expect(invalid.exitCode).toBe(2);
      expect(invalid.stderr).toContain('resources.vcpus: must be greater than 0');
      const unknownId = await stevedore(['result', 'nope'], { env: world.env });
      expect(unknownId.exitCode).toBe(2);
      expect(unknownId.stderr).toMatch(/unknown job "nope"/);
    } finally {
      worker.kill('SIGTERM');
    }
    const exited = await worker;
    expect(exited.exitCode).toBe(0);
    expect(exited.stdout).toContain('worker closed');
  });

  it('`logs` prints stdout to fd 1 and stderr to fd 2, --stdout/--stderr pick one, -f on a finished job prints all and exits', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; exit 3']),
    );
    expect((await client.waitForResult(id, { timeoutMs: 30_000 })).exitCode).toBe(3);
    const both = await stevedore(['logs', id], { env: world.env, stripFinalNewline: false });
    expect(both).toMatchObject({ exitCode: 0, stdout: 'out-1\nout-2\n', stderr: 'err-1\nerr-2\n' });
    const followed = await stevedore(['logs', id, '-f'], {
      env: world.env,
      stripFinalNewline: false,
      timeout: 10_000,
    });
    expect(followed).toMatchObject({ exitCode: 0, stdout: 'out-1\nout-2\n', stderr: 'err-1\nerr-2\n' });
    const onlyOut = await stevedore(['logs', id, '--stdout', '-f'], {
      env: world.env,
      stripFinalNewline: false,
    });
    expect(onlyOut).toMatchObject({ exitCode: 0, stdout: 'out-1\nout-2\n', stderr: '' });
    const onlyErr = await stevedore(['logs', id, '--stderr'], { env: world.env, stripFinalNewline: false });
    expect(onlyErr).toMatchObject({ exitCode: 0, stdout: '', stderr: 'err-1\nerr-2\n' });
    const events = await stevedore(['logs', id, '--events'], { env: world.env });
    expect(events.stdout).toMatch(/^\S+Z done\b/m);
    const two = await stevedore(['logs', id, '--stdout', '--stderr'], { env: world.env });
    expect(two).toMatchObject({
      exitCode: 2,
      stderr: 'stevedore: logs: choose one of --stdout, --stderr and --events',
    });
  });

  it('with no engine at DOCKER_HOST, `worker` and `demo` stop at once with one line saying what is missing and how to start it', async () => {
    const noEngine = { ...world.env, DOCKER_HOST: `unix://${join(world.dir, 'no-such-docker.sock')}` };
    for (const command of ['worker', 'demo']) {
      const r = await stevedore([command], { env: noEngine, timeout: 20_000 });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(String(r.stderr).split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^stevedore: runtime docker is not available: no Docker engine at unix://${world.dir}/no-such-docker\\.sock \\(connect ENOENT .*\\): start one with \`sudo (dockerd|systemctl start docker)`,
        ),
      );
    }
  });

  it('a SIGTERM while the worker is still starting is held until it has started, then closes it cleanly', async () => {
    // Its own state dir, so it starts an embedded Redis first: its first log line comes long
    // before the worker takes jobs.
    const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-early-signal-'));
    const worker = stevedore(['worker', '--log-level', 'info'], {
      env: { STEVEDORE_QUEUE: world.h.queue, STEVEDORE_STATE_DIR: stateDir },
    });
    try {
      worker.stdout?.once('data', () => worker.kill('SIGTERM'));
      const r = await worker;
      expect(r.signal).toBeUndefined();
      expect(r.exitCode).toBe(0);
      const messages = String(r.stdout)
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(messages.indexOf('worker started')).toBeGreaterThanOrEqual(0);
      expect(messages.indexOf('worker closed')).toBeGreaterThan(messages.indexOf('worker started'));
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('a bad configuration stops the worker at start naming the variable', async () => {
    const r = await stevedore(['worker'], { env: { ...world.env, STEVEDORE_CONCURRENCY: 'lots' } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe('stevedore: STEVEDORE_CONCURRENCY="lots" is invalid: expected a whole number >= 1');
  });
});
