import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { execa, type ResultPromise } from 'execa';
import type { SentinelTarget } from '../src/jobs/connection.js';
import type { ComposeStack } from '../test/helpers/compose.js';

/** One worker the load test can disturb and measure. */
export interface Replica {
  name: string;
  /** SIGKILL: no shutdown at all; its containers keep running for another worker to adopt. */
  kill(): Promise<void>;
  /** SIGTERM (the worker detaches its running containers), then the same worker starts anew. */
  restart(): Promise<void>;
  /** SIGTERM, and wait for the worker to exit. */
  stop(): Promise<void>;
  /** Resident memory in bytes, null when it cannot be read (not running). */
  rssBytes(): Promise<number | null>;
  /** Its /metrics text (compose replicas serve it on their network); absent where it serves none. */
  metrics?(): Promise<string>;
}

/** Where the jobs run: N compose replicas, or one worker process on the host. */
export interface Workers {
  describe: string;
  replicas(): Promise<Replica[]>;
  /** Brings the workers back to their full number after a kill; resolves when they run. */
  heal(): Promise<void>;
  close(): Promise<void>;
}

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
/** Grace `docker restart` gives a worker: its detach takes well under a second here. */
const RESTART_GRACE_S = 20;
/** Where docker-compose.yml's workers serve /metrics (STEVEDORE_HTTP), inside their network. */
const METRICS_PORT = 9464;
const SCRAPE_TIMEOUT_MS = 2_000;

/** `replicas` worker containers of a running compose stack (scaled here, through stack.sh). */
export async function composeWorkers(
  stack: ComposeStack,
  docker: Dockerode,
  replicas: number,
): Promise<Workers> {
  const scale = () => stack.stack(['up', '-d', '--no-deps', '--scale', `worker=${replicas}`, 'worker']);
  await scale();
  return {
    describe: `${replicas} compose replica${replicas === 1 ? '' : 's'}`,
    async replicas() {
      const found = await docker.listContainers({
        filters: {
          label: [`com.docker.compose.project=${stack.project}`, 'com.docker.compose.service=worker'],
        },
      });
      return found.map((info) => {
        const container = docker.getContainer(info.Id);
        return {
          name: info.Names[0]?.replace(/^\//, '') ?? info.Id,
          kill: async () => {
            await container.kill();
          },
          restart: async () => {
            await container.restart({ t: RESTART_GRACE_S });
          },
          stop: async () => {
            await container.stop({ t: RESTART_GRACE_S });
          },
          rssBytes: async () => {
            // cgroup v1 (these machines) reports the resident set as memory_stats.stats.rss.
            const stats = (await container.stats({ stream: false })) as {
              memory_stats?: { stats?: { rss?: number } };
            };
            return stats.memory_stats?.stats?.rss ?? null;
          },
          metrics: async () => {
            // The host reaches a container on its bridge network by the container's address.
            const { NetworkSettings } = await container.inspect();
            const ip = Object.values(NetworkSettings.Networks ?? {})
              .map((n) => n.IPAddress)
              .find(Boolean);
            if (!ip) throw new Error(`${info.Names[0]}: no address on its network`);
            const response = await fetch(`http://${ip}:${METRICS_PORT}/metrics`, {
              signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS),
            });
            if (!response.ok) throw new Error(`${info.Names[0]}: /metrics answered ${response.status}`);
            return response.text();
          },
        };
      });
    },
    heal: async () => {
      await scale();
    },
    close: async () => {
      await stack.stack(['up', '-d', '--no-deps', '--scale', 'worker=0', 'worker']);
    },
  };
}

/** Where the jobs go: a Redis (a URL, or a Sentinel's), a queue on it, and the log dir the workers write (a host path). */
export interface Target {
  redis: string | SentinelTarget;
  queue: string;
  logDir: string;
}

/** The worker settings that name the target's Redis (docs/configuration.md). */
function redisEnv(redis: Target['redis']): Record<string, string> {
  if (typeof redis === 'string') return { REDIS_URL: redis };
  return {
    REDIS_SENTINELS: redis.sentinels.map((s) => `${s.host}:${s.port}`).join(','),
    REDIS_SENTINEL_NAME: redis.name,
  };
}

/** One `stevedore worker` process on the host. */
function localProcess(
  target: Target,
  concurrency: number,
  stateDir: string,
  name: string,
  extraEnv: Record<string, string> = {},
): Replica {
  const env = {
    ...redisEnv(target.redis),
    STEVEDORE_QUEUE: target.queue,
    STEVEDORE_CONCURRENCY: String(concurrency),
    STEVEDORE_LOG_DIR: target.logDir,
    STEVEDORE_STATE_DIR: stateDir,
    // As the compose stack's test settings: a killed worker's jobs are adopted after 5 s.
    STEVEDORE_LOCK_DURATION_MS: '5000',
    STEVEDORE_ON_SHUTDOWN: 'detach',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  let child: ResultPromise | undefined;
  const spawn = () => {
    child = execa(process.execPath, [CLI, 'worker'], {
      env,
      reject: false,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  };
  spawn();
  const stop = async (signal: NodeJS.Signals) => {
    child?.kill(signal);
    await child;
  };
  return {
    name,
    kill: () => stop('SIGKILL'),
    stop: () => stop('SIGTERM'),
    restart: async () => {
      await stop('SIGTERM');
      spawn();
    },
    rssBytes: async () => {
      const status = await readFile(`/proc/${child?.pid}/status`, 'utf8').catch(() => '');
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      return kb === undefined ? null : Number(kb) * 1024;
    },
  };
}

/** `count` worker processes on the host, each with its own state dir under `stateDir`. */
export async function localWorkers(
  target: Target,
  count: number,
  concurrency: number,
  stateDir: string,
  options: {
    /** One engine socket per worker (the many-hosts runs); absent: every worker on the default engine. */
    engineSockets?: string[];
    /** More settings for every worker. */
    env?: Record<string, string>;
  } = {},
): Promise<Workers> {
  const { engineSockets, env } = options;
  const killed = new Set<Replica>();
  const processes = Array.from({ length: count }, (_, i) => {
    const socket = engineSockets?.[i];
    const p = socket
      ? localProcess(target, concurrency, join(stateDir, `host-${i + 1}`), `host-${i + 1}`, {
          ...env,
          DOCKER_HOST: `unix://${socket}`,
        })
      : localProcess(target, concurrency, join(stateDir, `worker-${i}`), `local-${i}`, env);
    const kill = p.kill;
    p.kill = async () => {
      await kill();
      killed.add(p);
    };
    return p;
  });
  return {
    describe: engineSockets
      ? `${count} engine${count === 1 ? '' : 's'}, a worker on each, concurrency ${concurrency}`
      : `${count} local process${count === 1 ? '' : 'es'}, concurrency ${concurrency} each`,
    replicas: async () => processes.filter((p) => !killed.has(p)),
    heal: async () => {
      for (const p of killed) await p.restart();
      killed.clear();
    },
    // SIGTERM: each worker shuts down and removes its own namespace holders.
    close: async () => {
      await Promise.all(processes.filter((p) => !killed.has(p)).map((p) => p.stop()));
    },
  };
}
