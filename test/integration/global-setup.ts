import { execFile } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import type { TestProject } from 'vitest/node';
import { bundledImageTarball } from '../../src/cli/demo.js';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';
import { openRuntime } from '../../src/executors/index.js';
import { coerceError } from '../../src/jobs/errors.js';
import { LABELS } from '../../src/jobs/names.js';
import { REDIS_PID_DIR } from '../helpers/redis.js';
import { REGISTRY_PID_DIR } from '../helpers/registry.js';

declare module 'vitest' {
  export interface ProvidedContext {
    imageTarball: string;
  }
}

/** Labels that mark containers made by tests: executor tests and stevedore workers on test queues. */
const LEAK_LABELS = ['stevedore.test', LABELS.queue];

/** The engine the tests need, checked as a worker checks it: the same one-line message when it is not there. */
async function requireDocker(docker: Dockerode): Promise<void> {
  const runtime = await openRuntime('docker', { docker: { client: docker, netns: 'fresh' } }).catch(
    (error: unknown) => {
      throw new Error(
        `integration tests need a Docker engine: ${coerceError(error).message} (or run .ci/run)`,
      );
    },
  );
  await runtime.close();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Test processes (redis-server, docker-registry) still alive from their pid files in `dir`, each
 * holding the directory to remove; they are killed and their files removed.
 */
async function leakedProcesses(dir: string): Promise<number[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const leaked: number[] = [];
  for (const name of names) {
    const pid = Number(name);
    const dataDir = await readFile(join(dir, name), 'utf8').catch(() => '');
    if (alive(pid)) {
      leaked.push(pid);
      process.kill(pid, 'SIGKILL');
    }
    await rm(join(dir, name), { force: true });
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
  return leaked;
}

async function leakedContainers(docker: Dockerode): Promise<string[]> {
  const leaked: string[] = [];
  for (const label of LEAK_LABELS) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) {
      leaked.push(`${c.Names.join(',')} (${c.Id.slice(0, 12)}, ${c.State})`);
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    }
  }
  return leaked;
}

/**
 * Namespace holders: those executor tests made without a worker are pooled by design and
 * removed here; one a test worker left (it is labelled with its queue) is a leak.
 */
async function leakedHolders(docker: Dockerode): Promise<string[]> {
  const leaked: string[] = [];
  for (const c of await docker.listContainers({ all: true, filters: { label: [HOLDER_LABEL] } })) {
    const owner = c.Labels[HOLDER_LABEL] ?? '';
    if (owner !== 'true' && !owner.startsWith('test-')) continue; // not ours: a real worker's
    if (owner !== 'true') leaked.push(`holder of queue ${owner} (${c.Id.slice(0, 12)})`);
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
  return leaked;
}

const run = promisify(execFile);

/**
 * Podman's containers of tests (its own store, seen through any service, so through its CLI):
 * test-labelled ones, and holders of test queues' workers. None when podman is not installed.
 */
async function leakedPodmanContainers(): Promise<string[]> {
  const leaked: string[] = [];
  for (const label of [...LEAK_LABELS, HOLDER_LABEL]) {
    const listed = await run('podman', [
      'ps',
      '-a',
      '--filter',
      `label=${label}`,
      '--format',
      '{{.ID}} {{.Names}} {{.State}} {{.Labels}}',
    ]).catch(() => ({ stdout: '' }));
    for (const line of listed.stdout.split('\n').filter((l) => l.trim() !== '')) {
      const [id = '', name = '', state = ''] = line.split(' ');
      // Holders a test executor pooled are its runtime's to remove (HOLDER_LABEL=true): not a leak here.
      if (label === HOLDER_LABEL && !line.includes(`${HOLDER_LABEL}:test-`)) continue;
      leaked.push(`podman ${name} (${id}, ${state})`);
      await run('podman', ['rm', '-f', id]).catch(() => undefined);
    }
  }
  return leaked;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const docker = new Dockerode();
  await requireDocker(docker);
  // Leftovers from an earlier, interrupted run would be blamed on this one: clear them first.
  await leakedContainers(docker);
  await leakedPodmanContainers();
  await leakedProcesses(REDIS_PID_DIR);
  await leakedProcesses(REGISTRY_PID_DIR);
  project.provide('imageTarball', await bundledImageTarball());

  return async () => {
    const containers = [
      ...(await leakedHolders(docker)),
      ...(await leakedContainers(docker)),
      ...(await leakedPodmanContainers()),
    ];
    const redis = await leakedProcesses(REDIS_PID_DIR);
    const registries = await leakedProcesses(REGISTRY_PID_DIR);
    const problems: string[] = [];
    if (containers.length > 0) problems.push(`containers left by tests: ${containers.join('; ')}`);
    if (redis.length > 0) problems.push(`test redis-server processes left running: pids ${redis.join(', ')}`);
    if (registries.length > 0) {
      problems.push(`test docker-registry processes left running: pids ${registries.join(', ')}`);
    }
    if (problems.length > 0) {
      // Vitest reports an error thrown here but still exits 0, so fail the process explicitly.
      process.exitCode = 1;
      throw new Error(`leak check failed (now cleaned up): ${problems.join(' | ')}`);
    }
  };
}
