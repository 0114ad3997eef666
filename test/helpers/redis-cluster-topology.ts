import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type WorkerConfig } from '../../src/config/worker.js';
import type { ClusterTarget } from '../../src/jobs/connection.js';
import { freePort } from '../../src/worker/redis-server.js';
import { cli, dataArgs, Node, run, until } from './redis-node.js';
import { testPolicy, writePolicy } from './stevedore.js';

/**
 * How long a node may not answer before the others count it as failing (`cluster-node-timeout`).
 * A replica is promoted about this long after its master dies, plus its election (a rank-0
 * replica waits 500–1000 ms, https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#replica-election-and-promotion).
 */
const NODE_TIMEOUT_MS = 2_000;
/** A failover takes about 2 node timeouts; on a loaded 2-core machine, give it far more. */
const FAILOVER_MS = 30_000;

/** One line of `CLUSTER NODES`: a node as another node (or itself) sees it. */
interface NodeView {
  id: string;
  port: number;
  flags: string[];
  /** The id of the master it replicates, for a replica. */
  masterId: string | undefined;
  /** The slot ranges it serves, [first, last] each, for a master. */
  slots: [number, number][];
}

/** Parses `CLUSTER NODES` (https://redis.io/docs/latest/commands/cluster-nodes/). */
function parseNodes(text: string): NodeView[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-', , , , , ...slots] = line.split(' ');
      const port = Number(/:(\d+)@/.exec(address)?.[1]);
      return {
        id,
        port,
        flags: flags.split(','),
        masterId: master === '-' ? undefined : master,
        // Importing and migrating entries ([slot->-id]) are no slot of the node's yet.
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [first, last = first] = s.split('-').map(Number);
            return [first ?? -1, last ?? -1];
          }),
      };
    });
}

/** A master killed, and the replica that is to take its slots over. */
export interface Kill {
  killed: Node;
  replica: Node;
  /** Date.now() once the master had exited. */
  killedAt: number;
}

/** When the replica took over: it said it is master, and every node agreed. */
export interface Promotion {
  /** Date.now() when the replica first answered ROLE as a master. */
  promotedAt: number;
  /** Date.now() when every live node had the slot on the replica and `cluster_state:ok`. */
  agreedAt: number;
}

/** The shape of a test Cluster: masters, every slot covered, and replicas for each. */
export interface ClusterShape {
  masters?: number;
  replicasPerMaster?: number;
}

/** A Redis Cluster on loopback: three masters, every slot covered, by default with no replicas. */
export class ClusterTopology {
  private constructor(
    private readonly root: string,
    readonly nodes: Node[],
  ) {}

  static async start(shape: ClusterShape = {}): Promise<ClusterTopology> {
    const { masters = 3, replicasPerMaster = 0 } = shape;
    const root = await mkdtemp(join(tmpdir(), 'stevedore-test-cluster-'));
    const nodes: Node[] = [];
    for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
      const port = await freePort();
      const dir = join(root, `n${port}`);
      nodes.push(
        new Node(port, dir, [
          ...dataArgs(port, dir),
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(NODE_TIMEOUT_MS),
        ]),
      );
    }
    const topology = new ClusterTopology(root, nodes);
    try {
      for (const node of nodes) await node.start();
      // On one address, redis-cli warns that replicas share their master's host; that is the point here.
      await run('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((n) => n.address),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ]);
      for (const node of nodes) {
        await until(`cluster state ok on ${node.address}`, async () =>
          (await cli(node.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
        );
      }
      // A replica that never synced would not stand for election (its data counts as too old).
      for (const node of nodes) {
        await until(`${node.address} a master or a synced replica`, async () => {
          const info = await cli(node.port, 'INFO', 'replication');
          return info.includes('role:master') || info.includes('master_link_status:up');
        });
      }
    } catch (error) {
      await topology.close();
      throw error;
    }
    return topology;
  }

  /** `host:port,…` of the nodes, as REDIS_CLUSTER_NODES takes them. */
  get nodeList(): string {
    return this.nodes.map((n) => n.address).join(',');
  }

  /** The nodes as a client's `redis: { clusterNodes }` takes them. */
  get target(): ClusterTarget {
    return { clusterNodes: this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) };
  }

  private get someLive(): Node {
    const node = this.nodes.find((n) => n.alive);
    if (!node) throw new Error('no node of the test Cluster is alive');
    return node;
  }

  private async view(from: Node = this.someLive): Promise<NodeView[]> {
    return parseNodes(await cli(from.port, 'CLUSTER', 'NODES'));
  }

  private byPort(port: number): Node {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node of the test Cluster has port ${port}`);
    return node;
  }

  /** The slot `key` hashes to (a prefix's hash tag, `{stevedore}`, stands for every key of it). */
  async slotOf(key: string): Promise<number> {
    return Number(await cli(this.someLive.port, 'CLUSTER', 'KEYSLOT', key));
  }

  /** The master serving `key`'s slot, as `from` (default: any live node) sees the Cluster. */
  async masterOf(key: string, from?: Node): Promise<Node> {
    const slot = await this.slotOf(key);
    const owner = (await this.view(from)).find(
      (v) => v.flags.includes('master') && v.slots.some(([first, last]) => first <= slot && slot <= last),
    );
    if (!owner) throw new Error(`no master serves slot ${slot} (of ${key})`);
    return this.byPort(owner.port);
  }

  /** The replicas of `master`. */
  async replicasOf(master: Node): Promise<Node[]> {
    const views = await this.view();
    const id = views.find((v) => v.port === master.port)?.id;
    return views.filter((v) => id && v.masterId === id).map((v) => this.byPort(v.port));
  }

  /** SIGKILLs the master serving `key`'s slot, which has one replica; returns at once (see untilPromoted). */
  async killMasterOf(key: string): Promise<Kill> {
    const killed = await this.masterOf(key);
    const [replica, ...others] = await this.replicasOf(killed);
    if (!replica || others.length > 0) {
      throw new Error(
        `the master on ${killed.address} has ${others.length + (replica ? 1 : 0)} replicas; a kill here expects exactly one`,
      );
    }
    await killed.kill();
    return { killed, replica, killedAt: Date.now() };
  }

  /**
   * Waits until the killed master's replica has taken over `key`'s slot: it answers as a master,
   * every live node has the slot on it, and every live node says the Cluster is ok.
   */
  async untilPromoted(kill: Kill, key: string): Promise<Promotion> {
    const { killed, replica } = kill;
    let promotedAt = 0;
    try {
      await until(
        `the promotion of ${replica.address} after ${killed.address} was killed`,
        async () => {
          if (!promotedAt && (await cli(replica.port, 'ROLE')).startsWith('master')) promotedAt = Date.now();
          if (!promotedAt) return false;
          for (const node of this.nodes.filter((n) => n.alive)) {
            if (!(await cli(node.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
            if ((await this.masterOf(key, node)) !== replica) return false;
          }
          return true;
        },
        FAILOVER_MS,
      );
    } catch (error) {
      // What the replica thinks of the Cluster and of itself, and what it logged, say why.
      const seen = await cli(replica.port, 'CLUSTER', 'NODES').catch((e: unknown) => String(e));
      throw new Error(`${String(error)}; ${replica.address} sees:\n${seen}\nand logged:\n${replica.output}`);
    }
    return { promotedAt, agreedAt: Date.now() };
  }

  async close(): Promise<void> {
    for (const node of this.nodes) await node.kill();
    await rm(this.root, { recursive: true, force: true });
  }
}

/**
 * A test worker's configuration on `topology` with the prefix `{stevedore}`: state, logs and the
 * test policy in `dir`, `env` beside the Cluster settings, a 5 s lock, and `name` in its worker id.
 */
export async function clusterWorkerConfig(
  topology: ClusterTopology,
  options: { dir: string; queue: string; name: string; env?: Record<string, string> },
): Promise<WorkerConfig> {
  const { dir, queue, name } = options;
  return {
    ...loadConfig({
      REDIS_CLUSTER_NODES: topology.nodeList,
      STEVEDORE_PREFIX: '{stevedore}',
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
