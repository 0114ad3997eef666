import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { InfrastructureError, PhaseError, statusCodeOf } from '../../jobs/errors.js';
import type { Reattachment } from '../executor.js';
import { wrapEngineError } from './errors.js';
import type { ContainerWatch } from './events.js';
import { awaitEngine, liveRestoreEnabled, watchContainer } from './outage.js';
import type { OutputFollower } from './output-follower.js';

/** How long to wait for the engine's `die` event once wait() answered (normally it is already there). */
const DIE_EVENT_WAIT_MS = 2_000;
/**
 * When the exit code came from inspect (the wait request never answered, or the engine came
 * back with the container exited), the output stream may hang the same way; it normally ends
 * within milliseconds of the exit, so after this long it is cut and the run goes on without it.
 */
export const OUTPUT_DRAIN_AFTER_INSPECT_MS = 5_000;

export interface ExitSettings {
  watchdogIntervalMs: number;
  engineOutageMs: number;
  /** See OUTPUT_DRAIN_AFTER_INSPECT_MS. */
  outputDrainMs: number;
  /** The `die` event's exit code ends the wait when it comes before the wait answer (EngineTraits). */
  exitFromDieEvent: boolean;
  /** EngineTraits.keepsContainers: whether a container that ended during an outage ended on its own. */
  keepsContainers: 'if-live-restore' | 'always';
}

interface WaitBody {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

/** The connection to the engine broke under a running container. */
class EngineLost extends Error {
  constructor() {
    super('lost the connection to the docker engine');
  }
}

/**
 * Learns how a started (or adopted) container ended: the engine's wait request, with a watchdog
 * beside it (a hung daemon, a lost response) and the engine's events (a daemon restart drops
 * them first). After an outage it takes the container back, and it refuses an exit that someone
 * other than the executor caused.
 */
export class ContainerExit {
  private request: Promise<number> = new Promise(() => undefined);
  readonly reattached: Reattachment[] = [];
  /** Why some output was not drained, when it was cut (see OUTPUT_DRAIN_AFTER_INSPECT_MS). */
  outputCut: string | null = null;

  constructor(
    private readonly docker: Dockerode,
    private readonly container: Dockerode.Container,
    private readonly watch: ContainerWatch | undefined,
    private readonly output: OutputFollower,
    private readonly settings: ExitSettings,
    private readonly log: Logger,
    /** Its `die` event came before anyone watched: do not wait for it. */
    private exitedUnwatched: boolean,
    /** Called once the container is known to have stopped (its namespace holder may be reused). */
    private readonly onStopped: () => void = () => undefined,
  ) {}

  /**
   * Asks the engine for the exit code, only once the container was started: "not-running" on a
   * started container answers at once if it already exited, while a "next-exit" wait sent before
   * start can reach the engine after a fast container exited and then wait forever.
   */
  ask(): void {
    this.request = this.container.wait({ condition: 'not-running' }).then((body: WaitBody) => {
      if (body.Error?.Message)
        this.log.warn({ containerId: this.container.id, error: body.Error.Message }, 'wait error');
      this.onStopped();
      return body.StatusCode;
    });
    this.request.catch(() => undefined); // awaited later (the exit race, settled()); not unhandled meanwhile
  }

  /** Settles when the engine answered the wait request (used to end a stop's grace early). */
  settled(): Promise<unknown> {
    return this.request.then(
      () => undefined,
      () => undefined,
    );
  }

  /** The exit code, once the output is drained (or cut, after the code came from inspect); rejects when `signal` aborts. */
  async wait(signal?: AbortSignal): Promise<number> {
    signal?.throwIfAborted();
    const abort = abortedBy(signal);
    try {
      return await this.waitFor(abort.aborted, signal);
    } finally {
      abort.release();
    }
  }

  private async waitFor(aborted: Promise<never>, signal?: AbortSignal): Promise<number> {
    const container = this.container;
    try {
      let code: number | null = null;
      let fromInspect = false;
      while (code === null) {
        const watchdog = new AbortController();
        // A dropped event stream is the quickest sign of a daemon restart: the wait request may
        // never settle then (its response is cut off after the headers).
        const lost = this.watch?.nextLoss().then(() => {
          throw new EngineLost();
        });
        lost?.catch(() => undefined); // raced below; unhandled when the container exits first
        const inspected = watchContainer(container, {
          intervalMs: this.settings.watchdogIntervalMs,
          outageMs: this.settings.engineOutageMs,
          stop: watchdog.signal,
          log: this.log,
        }).then((c) => ({ code: c, fromInspect: true }));
        const died =
          this.settings.exitFromDieEvent && this.watch
            ? [this.watch.exited().then((c) => ({ code: c, fromInspect: false }))]
            : [];
        try {
          const answer = await Promise.race([
            this.request.then((c) => ({ code: c, fromInspect: false })),
            aborted,
            inspected,
            ...(lost ? [lost] : []),
            ...died,
          ]);
          ({ code, fromInspect } = answer);
        } catch (error) {
          if (error instanceof PhaseError || statusCodeOf(error) !== undefined) throw error;
          // The connection to the engine broke (a daemon restart?): wait for it, take the container back.
          code = await this.resume(error instanceof EngineLost, signal);
          fromInspect = code !== null;
        } finally {
          watchdog.abort();
        }
      }
      this.onStopped();
      await (fromInspect ? this.drainWithin(aborted) : Promise.race([this.output.drained(), aborted]));
      await this.refuseForeignStop(code);
      return code;
    } catch (error) {
      if (error instanceof PhaseError) throw error;
      throw wrapEngineError('running', 'lost track of the container', error);
    }
  }

  /** Drains the output for at most outputDrainMs; then cuts it and says so in outputCut. */
  private async drainWithin(aborted: Promise<never>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.settings.outputDrainMs);
    });
    try {
      if ((await Promise.race([this.output.drained(), late, aborted])) !== 'late') return;
    } finally {
      clearTimeout(timer);
    }
    this.output.destroy();
    const kept = this.output.kept();
    this.outputCut = `the output stream had not ended ${this.settings.outputDrainMs} ms after the exit code was read from inspect; it was cut after ${kept.stdout} stdout and ${kept.stderr} stderr bytes, and anything written after those is not in the output`;
    this.log.warn(
      { containerId: this.container.id, ...kept },
      'output stream did not end after the exit; cut',
    );
  }

  /**
   * After the engine connection broke: waits for the engine, then reattaches to the container
   * if it survived (null: keep waiting), collects its exit code if it ended on its own while the
   * engine kept it (live-restore), and fails as infra when the engine stopped it or lost it.
   */
  private async resume(onlyEventsDropped: boolean, signal?: AbortSignal): Promise<number | null> {
    const container = this.container;
    // Only the event stream dropped while the output stream is still open and the engine
    // answers: not a restart (a proxy closing idle connections, say). Keep what we have.
    if (onlyEventsDropped && this.output.open) {
      const answers = await container.inspect({ abortSignal: AbortSignal.timeout(1_000) }).then(
        () => true,
        () => false,
      );
      if (answers) {
        this.log.debug(
          { containerId: container.id },
          'engine event stream dropped; the engine still answers',
        );
        return null;
      }
    }
    const lostAt = Date.now();
    this.log.warn({ containerId: container.id }, 'lost the docker engine; waiting for it to come back');
    // The old output stream must never deliver alongside a new one.
    this.output.destroy();
    const info = await awaitEngine(container, {
      lostAt,
      limitMs: this.settings.engineOutageMs,
      intervalMs: Math.min(this.settings.watchdogIntervalMs, 500),
      signal,
    });
    const running = info.State.Running;
    const kept = this.settings.keepsContainers === 'always' || (await liveRestoreEnabled(this.docker));
    if (!running && !kept) {
      throw new InfrastructureError(
        'running',
        `the docker engine restarted and stopped the container (exit ${info.State.ExitCode}; live-restore is off, enable it in dockerd to keep containers across restarts); the job is retried while attempts remain`,
      );
    }
    if (!running) this.exitedUnwatched = true;
    const replayed = await this.output.resume(container, info, this.output.kept());
    this.ask();
    this.reattached.push({ at: new Date().toISOString(), running, replayed });
    this.log.warn(
      { containerId: container.id, running, replayed },
      'docker engine back; container taken back',
    );
    return running ? null : info.State.ExitCode;
  }

  /** A container someone else stopped (the daemon shutting down, docker stop/kill) did not finish: infra. */
  private async refuseForeignStop(code: number): Promise<void> {
    const watch = this.watch;
    if (!watch) return;
    if (!this.exitedUnwatched) await watch.died(DIE_EVENT_WAIT_MS);
    if (watch.foreignSignal === null) return;
    throw new InfrastructureError(
      'running',
      `the container was stopped from outside Stevedore (signal ${watch.foreignSignal}, exit ${code}): the docker daemon shutting down, or docker stop/kill on the host (stop a job with "stevedore cancel"); the job is retried while attempts remain`,
    );
  }
}

/** Rejects with the phase once `signal` aborts; release() stops listening. */
function abortedBy(signal: AbortSignal | undefined): { aborted: Promise<never>; release: () => void } {
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new PhaseError('running', 'wait aborted', { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  return { aborted, release: () => signal?.removeEventListener('abort', onAbort) };
}
