import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type WorkerConfig } from '../../src/config/worker.js';
import { freePort } from '../../src/worker/redis-server.js';
import { cli, dataArgs, Node, until } from './redis-node.js';
import { testPolicy, writePolicy } from './stevedore.js';

/** When the sentinels named a new master after a kill: what `SentinelTopology.failover()` measured. */
export interface Failover {
  oldPort: number;
  newPort: number;
  /** Date.now() just before the SIGKILL. */
  killedAt: number;
  /** Date.now() when a sentinel first answered with the new master (polled every 50 ms). */
  promotedAt: number;
}

/** A master, `replicas` replicas (default 1) and three sentinels watching them, all on loopback. */
export class SentinelTopology {
  static readonly NAME = 'stevedore-test';

  private constructor(
    private readonly root: string,
    readonly nodes: Node[],
    readonly sentinels: Node[],
  ) {}

  static async start(options: { replicas?: number } = {}): Promise<SentinelTopology> {
    const root = await mkdtemp(join(tmpdir(), 'stevedore-test-sentinel-'));
    const a = await freePort();
    const master = new Node(a, join(root, `n${a}`), dataArgs(a, join(root, `n${a}`)));
    const replicas: Node[] = [];
    for (let i = 0; i < (options.replicas ?? 1); i++) {
      const b = await freePort();
      replicas.push(
        new Node(b, join(root, `n${b}`), [
          ...dataArgs(b, join(root, `n${b}`)),
          '--replicaof',
          '127.0.0.1',
          String(a),
        ]),
      );
    }
    const sentinels: Node[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = join(root, `s${port}`);
      await mkdir(dir, { recursive: true });
      const conf = join(dir, 'sentinel.conf');
      // Sentinel rewrites its own config file as it learns the topology, so each has one it may write.
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SentinelTopology.NAME} 127.0.0.1 ${a} 2`,
          `sentinel down-after-milliseconds ${SentinelTopology.NAME} 1000`,
          `sentinel failover-timeout ${SentinelTopology.NAME} 5000`,
          '',
        ].join('\n'),
      );
      sentinels.push(new Node(port, dir, [conf, '--sentinel']));
    }
    const topology = new SentinelTopology(root, [master, ...replicas], sentinels);
    try {
      await master.start();
      for (const replica of replicas) {
        await replica.start();
        await until('the replica syncing', async () =>
          (await cli(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
        );
      }
      for (const sentinel of sentinels) await sentinel.start();
      await until(
        'the sentinels seeing each other',
        async () =>
          (await cli(sentinels[0]?.port ?? 0, 'SENTINEL', 'SENTINELS', SentinelTopology.NAME))
            .split('\n')
            .filter((l) => l === 'name').length >= 2,
        30_000, // hello messages go every 2 s, and a loaded 2-core machine answers slowly
      );
    } catch (error) {
      await topology.close();
      throw error;
    }
    return topology;
  }

  /** `host:port,…` of the sentinels, as REDIS_SENTINELS takes them. */
  get sentinelList(): string {
    return this.sentinels.map((s) => s.address).join(',');
  }

  /** The master's port as the sentinels name it now; asked again while a sentinel does not answer. */
  async masterPort(): Promise<number> {
    let port = 0;
    await until(
      'a sentinel naming the master',
      async () => {
        const sentinel = this.sentinels[0]?.port ?? 0;
        const answer = await cli(sentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SentinelTopology.NAME);
        port = Number(answer.split('\n')[1]);
        return port > 0;
      },
      5_000,
    );
    return port;
  }

  /** Kills the master outright and waits until the sentinels have promoted the replica; returns the new master's port. */
  async killMaster(): Promise<number> {
    return (await this.failover()).newPort;
  }

  /** Kills the master outright and times the sentinels' promotion of a replica. */
  async failover(): Promise<Failover> {
    const oldPort = await this.masterPort();
    const killedAt = Date.now();
    await this.nodes.find((n) => n.port === oldPort)?.kill();
    await until('a failover', async () => (await this.masterPort()) !== oldPort, 30_000);
    const promotedAt = Date.now();
    return { oldPort, newPort: await this.masterPort(), killedAt, promotedAt };
  }

  /** Whether the node on `port` is a replica of the master on `master`, its link up. */
  private async follows(port: number, master: number): Promise<boolean> {
    const info = await cli(port, 'INFO', 'replication');
    return (
      info.includes('role:slave') &&
      info.includes(`master_port:${master}`) &&
      info.includes('master_link_status:up')
    );
  }

  /**
   * Resolves once the failover is over: every sentinel names the same master and none is still
   * failing over, and every other live node is its replica, in sync. The sentinel that leads a failover names the promoted
   * replica before the others do, and re-points the other replicas only after that.
   */
  async settled(): Promise<void> {
    await until(
      'the failover ending',
      async () => {
        // Each sentinel's view of the master: `SENTINEL MASTER` answers field, value, field, value, …
        const views = await Promise.all(
          this.sentinels.map(async (s) => {
            const lines = (await cli(s.port, 'SENTINEL', 'MASTER', SentinelTopology.NAME)).split('\n');
            const field = (name: string) => lines[lines.indexOf(name) + 1] ?? '';
            return {
              port: Number(field('port')),
              failingOver: field('flags').includes('failover_in_progress'),
            };
          }),
        );
        const master = views[0]?.port;
        if (master === undefined || views.some((v) => v.port !== master || v.failingOver)) return false;
        const replicas = this.nodes.filter((n) => n.alive && n.port !== master);
        return (await Promise.all(replicas.map((n) => this.follows(n.port, master)))).every(Boolean);
      },
      60_000,
    );
  }

  /**
   * Starts a killed node again as it was configured (an empty master: nothing is persisted), as a
   * host that comes back; resolves once the sentinels have made it a replica of the current master
   * and it has synced. Returns how long that took, in ms. Call it once the failover is over
   * (`settled()`): a replica not yet re-pointed would sync from the returning node, empty.
   */
  async revive(port: number): Promise<number> {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no data node on port ${port}`);
    const started = Date.now();
    await node.start();
    await until(
      `the node on ${port} rejoining as a replica`,
      async () => this.follows(port, await this.masterPort()),
      60_000, // the sentinels convert a returning master after their next look at it, then it syncs
    );
    return Date.now() - started;
  }

  /**
   * Hears every event a sentinel publishes (`+sdown`, `+odown`, `+switch-master`, …, see
   * https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/#pubsub-messages):
   * `onEvent(channel, message)`. Resolves, once subscribed, to the function that stops listening.
   */
  async watch(onEvent: (channel: string, message: string) => void): Promise<() => void> {
    const subscriber = new Redis({
      host: '127.0.0.1',
      port: this.sentinels[0]?.port ?? 0,
      lazyConnect: true,
    });
    subscriber.on('error', () => undefined); // a sentinel of this topology is only killed at close
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) =>
      onEvent(channel, message),
    );
    await subscriber.connect();
    await subscriber.psubscribe('*');
    return () => subscriber.disconnect();
  }

  async close(): Promise<void> {
    for (const node of [...this.sentinels, ...this.nodes]) await node.kill();
    await rm(this.root, { recursive: true, force: true });
  }
}

/**
 * A test worker's configuration through `topology`'s sentinels: state, logs and the test policy
 * in `dir`, `env` beside the Sentinel settings, a 5 s lock, and `name` in its worker id.
 */
export async function sentinelWorkerConfig(
  topology: SentinelTopology,
  options: { dir: string; queue: string; name: string; env?: Record<string, string> },
): Promise<WorkerConfig> {
  const { dir, queue, name } = options;
  return {
    ...loadConfig({
      REDIS_SENTINELS: topology.sentinelList,
      REDIS_SENTINEL_NAME: SentinelTopology.NAME,
      STEVEDORE_STATE_DIR: dir,
      ...options.env,
    }),
    queue,
    logDir: join(dir, 'logs'),
    lockDurationMs: 5_000,
    workerId: `test-${name}-worker-${process.pid}`,
    policyPath: await writePolicy(dir, testPolicy()),
  };
}
