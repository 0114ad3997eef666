import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Options, type ResultPromise } from 'execa';
import { afterAll, beforeAll } from 'vitest';
import { TestRedis } from './redis.js';
import { Harness, testPolicy, writePolicy } from './stevedore.js';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** Runs the stevedore CLI from source in a real child process. */
export function stevedore(args: string[], options: Options = {}): ResultPromise {
  // A worker told to stop may take seconds on a loaded machine: execa's own 5 s SIGKILL would cut its clean exit short.
  return execa(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    reject: false,
    forceKillAfterDelay: 30_000,
    ...options,
  });
}

/** What a CLI test file runs its processes against; each field is there once its hook has run. */
export interface CliWorld {
  readonly redis: TestRedis;
  readonly h: Harness;
  /** State dir of the CLI's workers, holding their policy file too. */
  readonly dir: string;
  /** The environment that points a `stevedore` process at this file's Redis, queue and policy. */
  readonly env: Record<string, string>;
}

/** Registers a CLI test file's hooks: one Redis, a Harness on its own queue, a state dir with the test policy. */
export function useCliWorld(prefix: string): CliWorld {
  const world: { redis?: TestRedis; h?: Harness; dir?: string; env?: Record<string, string> } = {};
  beforeAll(async () => {
    world.redis = await TestRedis.start();
    world.h = new Harness(world.redis);
    world.dir = await mkdtemp(join(tmpdir(), prefix));
    world.env = {
      REDIS_URL: world.redis.url,
      STEVEDORE_QUEUE: world.h.queue,
      STEVEDORE_STATE_DIR: world.dir,
      STEVEDORE_POLICY: await writePolicy(world.dir, testPolicy()),
    };
  });
  afterAll(async () => {
    await world.h?.close();
    await world.redis?.close();
    if (world.dir) await rm(world.dir, { recursive: true, force: true });
  });
  const ready = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`the CLI world's ${name} is used before its hook ran`);
    return value;
  };
  return {
    get redis() {
      return ready(world.redis, 'redis');
    },
    get h() {
      return ready(world.h, 'h');
    },
    get dir() {
      return ready(world.dir, 'dir');
    },
    get env() {
      return ready(world.env, 'env');
    },
  };
}
