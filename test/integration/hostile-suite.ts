import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../src/config/worker.js';
import type { RuntimeKind } from '../../src/executors/index.js';
import type { StevedoreClient } from '../../src/jobs/client.js';
import { JOB_ENV } from '../../src/jobs/names.js';
import type { JobResult } from '../../src/jobs/result.js';
import { TEST_IMAGE, testImageTarball } from '../helpers/docker.js';
import type { EngineWatch } from '../helpers/engine-watch.js';
import {
  hostLocation,
  PROBE_SCRIPT,
  probeEnv,
  type ReachExpectations,
  reachProblems,
} from '../helpers/hostile-probe.js';
import { type HostileWorld, hostileWorld } from '../helpers/hostile-specs.js';
import { TestRedis } from '../helpers/redis.js';
import { Harness } from '../helpers/stevedore.js';
import { snapshotTree, treeChanges } from '../helpers/tree-snapshot.js';

/** What the hostile suite needs to know about one runtime; one entry per kind openRuntime opens. */
export interface HostileRuntime {
  /** null when the runtime can be tested here, otherwise why not. */
  unavailable(): Promise<string | null>;
  /** The worker settings that put a worker on this runtime; `scratch` is the suite's own directory. */
  workerConfig(scratch: string): Partial<WorkerConfig>;
  /** Starts watching what the runtime creates and loads for `queue` (the worker runs by then). */
  watch(config: Partial<WorkerConfig> & { stateDir: string }, queue: string): Promise<EngineWatch>;
  /** Where this runtime keeps a promise differently, each with why (shown, never skipped). */
  expect: ReachExpectations & {
    /** Variables the runtime puts in every job's env beyond the image's and HOME, HOSTNAME, PATH, PWD. */
    addedEnv?: { pattern: RegExp; why: string };
  };
}

/** Variables every runtime may set: the image's own PATH, and the process basics. */
const BASE_ENV = ['HOME', 'HOSTNAME', 'PATH', 'PWD'];
const JOB_TIMEOUT_MS = 90_000;

interface Ready {
  h: Harness;
  client: StevedoreClient;
  queue: Queue;
  world: HostileWorld;
  config: Partial<WorkerConfig> & { stateDir: string };
  secret: string;
  hostNs: Record<string, string>;
  worldDev: string;
  probeEnv: Record<string, string>;
  /** The world's files that jobs must leave alone (all but the read-write dir and the worker's state). */
  snapshot(): Promise<Map<string, string>>;
}

async function hostNamespaces(): Promise<Record<string, string>> {
  const ns: Record<string, string> = {};
  for (const n of ['pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup']) ns[n] = await readlink(`/proc/self/ns/${n}`);
  return ns;
}

/** Host paths as a bind of them shows in a job's mount table (its filesystem's own path). */
async function fsPaths(paths: string[]): Promise<string[]> {
  return Promise.all(paths.map(async (p) => (await hostLocation(p)).fsPath));
}

async function output(result: JobResult): Promise<string> {
  const read = (path: string | null | undefined) => (path ? readFile(path, 'utf8').catch(() => '') : '');
  return `${await read(result.stdout.path)}${await read(result.stderr.path)}`;
}

/**
 * One hostile suite for every runtime: the hostile specs refused with their exact messages and
 * nothing made, and jobs the policy allows that try every way out, each judged by what the job
 * could reach (the secret's bytes in its output, files on the host, its capabilities, namespaces
 * and mount table). Called once per runtime by hostile.test.ts.
 */
export function hostileSuite(kind: RuntimeKind, runtime: HostileRuntime, reason: string | null): void {
  if (reason !== null) {
    describe(`${kind}: hostile suite`, () => {
      console.warn(`[skip] ${kind} hostile suite: ${reason}`);
      it.skip(`skipped: ${reason}`, () => undefined);
    });
    return;
  }

  // Its own set-up, not useTestWorld: one worker for the whole suite, configured from the hostile world it builds first.
  describe(`${kind}: hostile suite`, () => {
    let scratch = '';
    let redis: TestRedis | undefined;
    let h: Harness | undefined;
    let ready: Ready | undefined;
    const get = (): Ready => {
      if (!ready) throw new Error('the hostile suite is used before its worker started');
      return ready;
    };

    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), `stevedore-hostile-${kind}-`));
      await mkdir(join(scratch, 'world'));
      const world = await hostileWorld(join(scratch, 'world'), {
        tarballPrefixes: [dirname(testImageTarball())],
      });
      const secret = `stevedore-secret-${randomBytes(16).toString('hex')}`;
      const secretPath = join(world.dirs.outside, 'secret');
      await writeFile(secretPath, `${secret}\n`, { mode: 0o600 });
      redis = await TestRedis.start();
      h = new Harness(redis);
      const own = runtime.workerConfig(scratch);
      const config = {
        ...own,
        concurrency: 4,
        ...world.workerConfig,
        singularity: { ...own.singularity, ...world.workerConfig.singularity },
      };
      // The worker's own files inside the world: written by the worker, not by jobs.
      const workerFiles = [world.stateDir, world.workerConfig.singularity?.sifCache].filter(
        (d): d is string => d !== undefined,
      );
      await h.worker(config);
      const location = await hostLocation(secretPath);
      const outside = await hostLocation(world.dirs.outside);
      const worldLocation = await hostLocation(world.root);
      ready = {
        h,
        client: h.client(),
        queue: new Queue(h.queue, { connection: { host: '127.0.0.1', port: redis.port } }),
        world,
        config,
        secret,
        hostNs: await hostNamespaces(),
        worldDev: worldLocation.dev,
        probeEnv: probeEnv({
          secret: { path: secretPath, ...location },
          outside: { path: world.dirs.outside, ...outside },
          worldFsPath: worldLocation.fsPath,
        }),
        snapshot: () => snapshotTree(world.root, [world.dirs.rw, ...workerFiles]),
      };
    }, 120_000);

    afterAll(async () => {
      await ready?.queue.close();
      await h?.close();
      await redis?.close();
      await rm(scratch, { recursive: true, force: true });
    });

    /** Adds job data as a producer using BullMQ directly would: no client-side check at all. */
    async function submit(data: unknown): Promise<string> {
      const job = await get().queue.add('run', data, { attempts: 3, backoff: { type: 'fixed', delay: 10 } });
      return job.id as string;
    }

    const wait = (id: string) => get().client.waitForResult(id, { timeoutMs: JOB_TIMEOUT_MS });

    const allowedJob = (command: string[], extra: Record<string, unknown> = {}) => ({
      image: TEST_IMAGE,
      imageTarball: testImageTarball(),
      command,
      maxRunTimeSeconds: 120,
      ...extra,
    });

    it('refuses every hostile spec with its exact message, unretried; creates, loads and writes nothing', async () => {
      const { world, h, config } = get();
      const logsBefore = await readdir(world.logDir);
      const watch = await runtime.watch(config, h.queue);
      const cases: [string, unknown, (message: string) => boolean, string][] = [
        ...world.table.map(([what, data, message]): [string, unknown, (m: string) => boolean, string] => [
          what,
          data,
          (m) => m === message,
          message,
        ]),
        ...world.refusedNaming.map(
          ([what, data, field]): [string, unknown, (m: string) => boolean, string] => [
            what,
            data,
            (m) => /^(denied by policy|invalid job spec)/.test(m) && m.includes(field),
            `a refusal naming ${field}`,
          ],
        ),
      ];
      const ids = await Promise.all(cases.map(([, data]) => submit(data)));
      const wrong: string[] = [];
      for (const [i, id] of ids.entries()) {
        const [what, , matches, wanted] = cases[i] as (typeof cases)[number];
        const result = await wait(id);
        const job = await get().queue.getJob(id);
        const message = result.error?.message ?? '';
        const refused =
          result.state === 'Failed' &&
          result.reason === 'invalid' &&
          result.containerId === null &&
          result.error?.phase === 'validating' &&
          job?.attemptsMade === 1;
        if (!refused || !matches(message)) {
          wrong.push(
            `${what}: ${result.state}/${result.reason}, exit ${result.exitCode}, "${message}" (wanted ${wanted})`,
          );
        }
      }
      const activity = await watch.stop();
      expect.soft(wrong, 'specs not refused as they must be').toEqual([]);
      expect.soft(activity.created, 'containers created').toEqual([]);
      expect.soft(activity.loaded, 'images loaded').toEqual([]);
      // No job got as far as its output files.
      expect.soft(await readdir(world.logDir), 'log dirs written').toEqual(logsBefore);
    }, 180_000);

    it('an allowed job that tries every way out reads no secret, writes no host file and holds no admin capability', async () => {
      const { world, snapshot } = get();
      const before = await snapshot();
      const id = await submit(
        allowedJob(['sh', '-c', PROBE_SCRIPT], {
          env: get().probeEnv,
          mounts: {
            '/data': { hostPath: world.dirs.data, readOnly: true },
            '/rw': { hostPath: world.dirs.rw, readOnly: false },
          },
        }),
      );
      const result = await wait(id);
      const text = await output(result);
      expect(result, text).toMatchObject({ state: 'Complete', exitCode: 0 });
      const problems = reachProblems(text, {
        secret: get().secret,
        hostNs: get().hostNs,
        worldDev: get().worldDev,
        allowedBinds: await fsPaths([world.dirs.data, world.dirs.rw]),
        readOnlyBinds: await fsPaths([world.dirs.data]),
        expect: runtime.expect,
      });
      expect.soft(problems, text).toEqual([]);
      expect.soft(text, 'the read-write bind works').toMatch(/^act\.rw-write=allowed/m);
      expect.soft(treeChanges(before, await snapshot()), 'host files written').toEqual([]);
    }, 120_000);

    it('a mount path with , : or source= is refused naming the field, or the job sees only its one directory', async () => {
      const { world, snapshot } = get();
      const { rw, data } = world.dirs;
      // Host directories whose names are another program's mount syntax, inside the read-write prefix.
      for (const d of ['a,source=/tmp', 'b', 'b,/tmp', 'c', 'c:/tmp'])
        await mkdir(join(rw, d), { recursive: true });
      const cases: [string, Record<string, { hostPath: string; readOnly: boolean }>, string][] = [
        [
          'container path /x,source=/',
          { '/x,source=/': { hostPath: rw, readOnly: false } },
          'mounts./x,source=/',
        ],
        ['container path /h1,/:/h2', { '/h1,/:/h2': { hostPath: rw, readOnly: false } }, 'mounts./h1,/:/h2'],
        [
          'host path with ,source=',
          { '/d': { hostPath: join(rw, 'a,source=/tmp'), readOnly: false } },
          'mounts./d.hostPath',
        ],
        [
          'host path with ,',
          { '/d': { hostPath: join(rw, 'b,/tmp'), readOnly: false } },
          'mounts./d.hostPath',
        ],
        [
          'host path with :',
          { '/d': { hostPath: join(rw, 'c:/tmp'), readOnly: false } },
          'mounts./d.hostPath',
        ],
        [
          'a read-only bind followed by another in its container path',
          { [`/w,${data}:/w2`]: { hostPath: data, readOnly: true } },
          `mounts./w,${data}:/w2`,
        ],
        [
          'a read-only bind with readonly=false in its container path',
          { '/y,readonly=false': { hostPath: data, readOnly: true } },
          'mounts./y,readonly=false',
        ],
      ];
      const before = await snapshot();
      const ids = await Promise.all(
        cases.map(([, mounts]) =>
          submit(allowedJob(['sh', '-c', PROBE_SCRIPT], { env: get().probeEnv, mounts })),
        ),
      );
      for (const [i, id] of ids.entries()) {
        const [what, mounts, field] = cases[i] as (typeof cases)[number];
        const result = await wait(id);
        const text = await output(result);
        if (result.state === 'Failed') {
          expect.soft(result, `${what}: ${text}`).toMatchObject({ reason: 'invalid', containerId: null });
          expect.soft(result.error?.message, what).toContain(field);
          continue;
        }
        expect.soft(result, `${what}: ${text}`).toMatchObject({ state: 'Complete', exitCode: 0 });
        const problems = reachProblems(text, {
          secret: get().secret,
          hostNs: get().hostNs,
          worldDev: get().worldDev,
          allowedBinds: await fsPaths(Object.values(mounts).map((m) => m.hostPath)),
          readOnlyBinds: await fsPaths(
            Object.values(mounts)
              .filter((m) => m.readOnly)
              .map((m) => m.hostPath),
          ),
          expect: runtime.expect,
        });
        expect.soft(problems, `${what}\n${text}`).toEqual([]);
      }
      expect.soft(treeChanges(before, await snapshot()), 'host files written').toEqual([]);
    }, 180_000);

    it("gives the job exactly the spec's env and Stevedore's two variables, nothing of the worker's", async () => {
      const env = { A: '1', B: 'two words', EMPTY: '', STEVEDORE_JOB_VALUE: 'x=y' };
      process.env.STEVEDORE_WORKER_SECRET = 'must-not-leak';
      let result: JobResult;
      try {
        result = await wait(await submit(allowedJob(['env'], { env })));
      } finally {
        delete process.env.STEVEDORE_WORKER_SECRET;
      }
      const text = await output(result);
      expect(result, text).toMatchObject({ state: 'Complete', exitCode: 0 });
      const vars = Object.fromEntries(
        text
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      expect.soft(vars).toMatchObject(env);
      // The only variables Stevedore adds (docs/retries.md), on every runtime alike.
      expect.soft(vars).toMatchObject({ [JOB_ENV.attempt]: '1', [JOB_ENV.jobId]: result.jobId });
      const ours: readonly string[] = Object.values(JOB_ENV);
      const added = runtime.expect.addedEnv;
      const extra = Object.keys(vars).filter(
        (k) => !(k in env) && !BASE_ENV.includes(k) && !ours.includes(k) && !added?.pattern.test(k),
      );
      expect.soft(extra, `variables beyond the spec's: ${text}`).toEqual([]);
      expect.soft(text).not.toContain('must-not-leak');
    }, 120_000);
  });
}
