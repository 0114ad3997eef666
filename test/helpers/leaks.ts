import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { afterEach, beforeEach } from 'vitest';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';
import { LABELS } from '../../src/jobs/names.js';
import { testDocker } from './docker.js';
import { markScope, type ScopeMark, scopeSince } from './test-scope.js';

/**
 * How long a test's teardown may take to finish after its hooks return: a worker's close has
 * removed its containers and holders, but an engine may still be reaping a removed container
 * or a killed process may not be gone yet. Polled, so a clean test pays one look.
 */
const TEARDOWN_GRACE_MS = 10_000;
const POLL_MS = 100;

const run = promisify(execFile);

/** What was there when a test (or file) began: leaks are what it made and left. */
export interface LeakBaseline {
  readonly scope: ScopeMark;
  readonly processes: ReadonlySet<number>;
}

interface Leak {
  what: string;
  /** Removes or kills it, so one test's leak is not blamed on the next. */
  clean(): Promise<void>;
}

/**
 * Live (not zombie) processes below this one: everything the test file started, directly or not.
 * The walk does not go below `keep`: what a process from before the test starts (a browser's
 * renderers, a registry's workers) is that process's, not a leak of the test.
 */
async function descendants(keep: ReadonlySet<number> = new Set()): Promise<Map<number, string>> {
  const parents = new Map<number, number>();
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const stats = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')));
  stats.forEach((stat, i) => {
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state && state !== 'Z' && ppid) parents.set(Number(pids[i]), Number(ppid));
  });
  const found = new Map<number, string>();
  const walk = (parent: number): void => {
    for (const [pid, ppid] of parents) {
      if (ppid !== parent || found.has(pid)) continue;
      found.set(pid, '');
      if (!keep.has(pid)) walk(pid);
    }
  };
  walk(process.pid);
  for (const pid of found.keys()) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    found.set(pid, cmdline.split('\0').filter(Boolean).join(' ').slice(0, 120));
  }
  return found;
}

export async function leakBaseline(): Promise<LeakBaseline> {
  return { scope: markScope(), processes: new Set((await descendants()).keys()) };
}

async function dockerLeaks(docker: Dockerode, queue: string): Promise<Leak[]> {
  const kinds = [
    ['container', LABELS.queue],
    ['namespace holder', HOLDER_LABEL],
  ] as const;
  const listed = await Promise.all(
    kinds.map(([, label]) => docker.listContainers({ all: true, filters: { label: [`${label}=${queue}`] } })),
  );
  return listed.flatMap((containers, i) =>
    containers.map((c) => ({
      what: `${kinds[i]?.[0]} ${c.Names.join(',')} (${c.Id.slice(0, 12)}, ${c.State}) of queue ${queue}`,
      clean: () =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined), // gone meanwhile: nothing left to clean
    })),
  );
}

/** Podman's containers of the queue, through its CLI: it sees every service's store. */
async function podmanLeaks(queue: string): Promise<Leak[]> {
  const leaks: Leak[] = [];
  for (const label of [LABELS.queue, HOLDER_LABEL]) {
    const { stdout } = await run('podman', [
      'ps',
      '-a',
      '--filter',
      `label=${label}=${queue}`,
      '--format',
      '{{.ID}} {{.Names}} {{.State}}',
    ]);
    for (const line of stdout.split('\n').filter((l) => l.trim() !== '')) {
      const [id = '', name = '', state = ''] = line.split(' ');
      leaks.push({
        what: `podman container ${name} (${id}, ${state}) of queue ${queue}`,
        clean: () =>
          run('podman', ['rm', '-f', id]).then(
            () => undefined,
            () => undefined, // gone meanwhile: nothing left to clean
          ),
      });
    }
  }
  return leaks;
}

async function processLeaks(baseline: LeakBaseline, owned: readonly number[]): Promise<Leak[]> {
  const leaks: Leak[] = [];
  for (const [pid, cmdline] of await descendants(baseline.processes)) {
    if (baseline.processes.has(pid) || owned.includes(pid)) continue;
    leaks.push({
      what: `process ${pid} (${cmdline})`,
      clean: async () => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // it ended meanwhile
        }
      },
    });
  }
  return leaks;
}

async function findLeaks(
  baseline: LeakBaseline,
  docker: Dockerode,
  owned: readonly number[],
): Promise<Leak[]> {
  const { queues, podman } = scopeSince(baseline.scope);
  const containers = await Promise.all([
    ...queues.map((queue) => dockerLeaks(docker, queue)),
    ...(podman ? queues.map(podmanLeaks) : []),
  ]);
  // After the listing: its own `podman ps` processes would otherwise be counted.
  return [...containers.flat(), ...(await processLeaks(baseline, owned))];
}

/**
 * Fails, naming each, if containers or namespace holders of the queues made since `baseline`,
 * or processes started since it (but the `owned` ones, still in use), are still there once teardown has had its grace. What leaked
 * is removed, so the next test starts clean and the failure stays with the test that caused it.
 */
export async function checkLeaks(
  baseline: LeakBaseline,
  where: string,
  owned: readonly number[] = [],
): Promise<void> {
  const docker = testDocker();
  const deadline = Date.now() + TEARDOWN_GRACE_MS;
  let leaks = await findLeaks(baseline, docker, owned);
  while (leaks.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    leaks = await findLeaks(baseline, docker, owned);
  }
  if (leaks.length === 0) return;
  for (const leak of leaks) await leak.clean();
  throw new Error(
    `${where} left behind (now removed): ${leaks.map((l) => l.what).join('; ')}. ` +
      'Close what the test opens in its own finally or afterEach.',
  );
}

/**
 * The per-test leak check for a file that keeps its own set-up (useTestWorld has it built in).
 * Register it before the file's other hooks: vitest runs afterEach hooks last-registered first,
 * so the check runs after the file's own cleanup.
 */
export function useLeakCheck(): void {
  let baseline: LeakBaseline | undefined;
  beforeEach(async () => {
    baseline = await leakBaseline();
  });
  afterEach(async () => {
    if (baseline) await checkLeaks(baseline, 'the test');
  });
}
