import type { IncomingMessage } from 'node:http';
import type Dockerode from 'dockerode';

/** How long an unused event subscription stays open for the next container. */
const IDLE_CLOSE_MS = 10_000;
const RECONNECT_DELAY_MS = 500;
/** A subscription that does not answer by then is given up for this container (it falls back to inspect). */
const OPEN_TIMEOUT_MS = 5_000;
/** The container events a watch takes. */
const WATCHED_ACTIONS: readonly string[] = ['kill', 'oom', 'die'];

interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/**
 * What the engine's event stream said about one container: signals sent to it by someone
 * other than its executor, the kernel's OOM kill, and its death with the exit code.
 */
export class ContainerWatch {
  /** A signal someone else sent (docker stop/kill, or the daemon stopping it on shutdown). */
  foreignSignal: string | null = null;
  oom = false;
  exitCode: number | null = null;
  /** The stream dropped while watching: events may be missing (the daemon went away). */
  gap = false;
  private readonly waiters = new Set<() => void>();
  private readonly lossWaiters = new Set<() => void>();

  constructor(
    readonly id: string,
    /** Whether a kill the engine reports now was sent by the executor itself. */
    private readonly ownSignal: () => boolean,
  ) {}

  /** Resolves true once `die` was seen, false when it did not come within `timeoutMs` or the stream dropped. */
  died(timeoutMs: number): Promise<boolean> {
    if (this.exitCode !== null) return Promise.resolve(true);
    if (this.gap) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.exitCode !== null);
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  /** Resolves with the exit code once `die` was seen with one; never when it is not. */
  exited(): Promise<number> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.exitCode === null || Number.isNaN(this.exitCode)) return;
        this.waiters.delete(check);
        resolve(this.exitCode);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves at the next drop of the event stream (the daemon went away, or the connection broke). */
  nextLoss(): Promise<void> {
    return new Promise((resolve) => this.lossWaiters.add(resolve));
  }

  /** @internal */
  take(event: EngineEvent): void {
    const attributes = event.Actor?.Attributes ?? {};
    if (event.Action === 'oom') this.oom = true;
    else if (event.Action === 'kill' && !this.ownSignal()) this.foreignSignal ??= attributes.signal ?? '?';
    else if (event.Action === 'die') {
      this.exitCode = Number(attributes.exitCode ?? Number.NaN);
      this.wake();
    }
  }

  /** @internal */
  lose(): void {
    this.gap = true;
    this.wake();
    const waiters = [...this.lossWaiters];
    this.lossWaiters.clear();
    for (const waiter of waiters) waiter();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/**
 * One subscription to the engine's container events, shared by every executor of one
 * DockerRuntime: the exit, OOM and foreign-kill facts arrive without an inspect per job.
 * The subscription opens for the first watched container, reconnects (replaying from the last
 * event seen) while any container is watched, and closes when none has been for a while. Its
 * socket never keeps the process alive.
 */
export class DockerEvents {
  private readonly watches = new Map<string, ContainerWatch>();
  private stream: IncomingMessage | undefined;
  private opening: Promise<void> | undefined;
  private lastSeconds = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private buffered = '';

  private closed = false;

  /** `filtersActions` false: the engine ignores an `event` filter (Podman 4.3), so actions are picked out here. */
  constructor(
    private readonly docker: Dockerode,
    private readonly filtersActions = true,
  ) {}

  /** Starts recording events for a container; resolves once the subscription is live. */
  async watch(containerId: string, ownSignal: () => boolean): Promise<ContainerWatch> {
    clearTimeout(this.idleTimer);
    const watch = new ContainerWatch(containerId, ownSignal);
    this.watches.set(containerId, watch);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the engine's event stream did not answer within ${OPEN_TIMEOUT_MS} ms`)),
        OPEN_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([this.open(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return watch;
  }

  unwatch(containerId: string): void {
    this.watches.delete(containerId);
    if (this.watches.size > 0) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.closeIfIdle(), IDLE_CLOSE_MS);
    this.idleTimer.unref();
  }

  private open(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the engine event subscription is closed'));
    if (this.stream) return Promise.resolve();
    this.opening ??= this.subscribe().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async subscribe(): Promise<void> {
    const since = this.lastSeconds > 0 ? { since: this.lastSeconds } : {};
    const filters: Record<string, string[]> = { type: ['container'] };
    if (this.filtersActions) filters.event = [...WATCHED_ACTIONS];
    const stream = (await this.docker.getEvents({ ...since, filters })) as unknown as IncomingMessage;
    stream.socket?.unref();
    if (this.closed) {
      stream.destroy();
      throw new Error('the engine event subscription is closed');
    }
    this.stream = stream;
    this.buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => this.read(text));
    const dropped = (): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      for (const watch of this.watches.values()) watch.lose();
      if (this.watches.size > 0) this.reconnect();
    };
    stream.once('end', dropped);
    stream.once('close', dropped);
    stream.on('error', dropped); // lasting: a second error must not be an unhandled 'error' event
  }

  /** Keeps trying while containers are watched; their `gap` flag already tells them events may be missing. */
  private reconnect(): void {
    const retry = setTimeout(() => {
      if (this.closed || this.watches.size === 0 || this.stream) return;
      this.open().catch(() => this.reconnect());
    }, RECONNECT_DELAY_MS);
    retry.unref();
  }

  private read(text: string): void {
    this.buffered += text;
    let newline = this.buffered.indexOf('\n');
    while (newline >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      newline = this.buffered.indexOf('\n');
      if (!line) continue;
      let event: EngineEvent;
      try {
        event = JSON.parse(line) as EngineEvent;
      } catch {
        continue;
      }
      // Whole seconds: a reconnect replays that second again, and every fact here is idempotent.
      if (event.time) this.lastSeconds = event.time;
      const id = event.Actor?.ID;
      if (id && WATCHED_ACTIONS.includes(event.Action ?? '')) this.watches.get(id)?.take(event);
    }
  }

  private closeIfIdle(): void {
    if (this.watches.size > 0) return;
    const stream = this.stream;
    this.stream = undefined;
    stream?.destroy();
  }

  /** Ends the subscription for good (its runtime closed); watches still open get no more events. */
  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.watches.clear();
    const stream = this.stream;
    this.stream = undefined;
    stream?.destroy();
  }
}
