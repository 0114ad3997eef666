import type { Failover, SentinelTopology } from '../test/helpers/redis-topology.js';
import { untilShare } from './disturb.js';
import type { LoadProgress } from './run-load.js';

/** One master killed during a run: what the topology measured, and when in the run it was. */
export interface FailoverRecord extends Failover {
  /** Share of the jobs whose submit had begun at the kill (0–1). */
  atSubmitted: number;
  /** From the kill to every sentinel naming the new master and every live replica following it. */
  settledMs: number;
  /** From restarting the killed node to it serving as a synced replica of the new master; null if it did not. */
  rejoinMs: number | null;
}

/** A sentinel's event, with when it was heard (Date.now()). */
export interface SentinelEvent {
  at: number;
  channel: string;
  message: string;
}

/** The sentinel events that say what happened to the master (not the sentinels' talk among themselves). */
const TOLD =
  /^[+-](sdown|odown|switch-master|failover-end|failover-end-for-timeout|try-failover|tilt|promoted-slave|convert-to-slave|role-change|slave-reconf-done)$/;

/**
 * Kills the Redis master `count` times, spread evenly over the submits (at 1/(count+1),
 * 2/(count+1), … of them), as a host that dies: SIGKILL, no warning. Once each failover is
 * over, the killed node is started again, as a host that comes back, so the next failover again
 * has a replica to promote and WAIT again has replicas to count. Keeps what it measured in `records`,
 * and every event a sentinel published meanwhile in `events` (a failover no kill caused shows there).
 */
export class FailoverSchedule {
  readonly records: FailoverRecord[] = [];

  private constructor(
    private readonly topology: SentinelTopology,
    private readonly count: number,
    private readonly say: (line: string) => void,
    readonly events: SentinelEvent[],
    readonly close: () => void,
  ) {}

  /** A schedule listening to the topology's sentinels until `close()`. */
  static async watching(
    topology: SentinelTopology,
    count: number,
    say: (line: string) => void,
  ): Promise<FailoverSchedule> {
    const events: SentinelEvent[] = [];
    const started = Date.now();
    const close = await topology.watch((channel, message) => {
      events.push({ at: Date.now(), channel, message });
      if (TOLD.test(channel))
        say(`sentinel, ${((Date.now() - started) / 1000).toFixed(1)} s: ${channel} ${message}`);
    });
    return new FailoverSchedule(topology, count, say, events, close);
  }

  readonly run = async (progress: LoadProgress): Promise<string[]> => {
    const actions: string[] = [];
    for (let i = 1; i <= this.count; i++) {
      await untilShare(progress.submitted, i / (this.count + 1));
      const atSubmitted = progress.submitted();
      const failover = await this.topology.failover();
      const promoted = `killed the master (:${failover.oldPort}) at ${Math.round(atSubmitted * 100)}% submitted; the sentinels promoted :${failover.newPort} ${failover.promotedAt - failover.killedAt} ms later`;
      this.say(promoted);
      await this.topology.settled();
      const settledMs = Date.now() - failover.killedAt;
      this.say(
        `every sentinel names :${failover.newPort} and every live replica follows it, ${settledMs} ms after the kill`,
      );
      const rejoinMs = await this.topology.revive(failover.oldPort).catch((error: unknown) => {
        this.say(`the killed node :${failover.oldPort} did not come back as a replica: ${String(error)}`);
        return null;
      });
      const rejoined =
        rejoinMs === null
          ? `:${failover.oldPort} did not rejoin`
          : `:${failover.oldPort} started again, a synced replica ${rejoinMs} ms later`;
      this.say(rejoined);
      actions.push(`${promoted}; ${rejoined}`);
      this.records.push({ ...failover, atSubmitted, settledMs, rejoinMs });
    }
    return actions;
  };
}
