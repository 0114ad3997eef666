import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { StreamCounts } from '../../executors/executor.js';
import type { OutputStream } from '../../jobs/keys.js';
import { keptSoFar, OutputCapture } from '../output/capture.js';
import { EventsLog } from '../output/events-log.js';
import type { LiveOutput } from '../output/live-output.js';

/**
 * Where one attempt's output and its own account go: stdout, stderr and events.log in the
 * attempt's directory (none = tails only), each with its live copy in Redis when there is one.
 */
export class RunOutput {
  private constructor(
    readonly events: EventsLog,
    private readonly liveEvents: LiveOutput | null,
    readonly stdout: OutputCapture,
    readonly stderr: OutputCapture,
    /** Bytes an earlier worker's part of this run already kept (adoption); zeros otherwise. */
    readonly kept: StreamCounts,
  ) {}

  /**
   * Opens the files; when `adopting`, the captures continue what an earlier worker wrote. Each
   * file keeps at most `maxOutputBytes` of its stream, and events.log says when one is capped.
   */
  static async open(
    dir: string | null,
    openLive: ((stream: OutputStream) => LiveOutput) | undefined,
    adopting: boolean,
    maxOutputBytes: number,
  ): Promise<RunOutput> {
    if (dir) await mkdir(dir, { recursive: true });
    const file = (name: string): string | null => (dir ? join(dir, name) : null);
    const liveEvents = openLive?.('events') ?? null;
    const events = new EventsLog(file('events.log'), (line) => liveEvents?.push(line));
    const [keptOut, keptErr] = adopting
      ? await Promise.all([keptSoFar(file('stdout')), keptSoFar(file('stderr'))])
      : [undefined, undefined];
    const capture = (stream: 'stdout' | 'stderr', kept: typeof keptOut): OutputCapture =>
      new OutputCapture(file(stream), openLive?.(stream) ?? null, kept, {
        maxBytes: maxOutputBytes,
        onCapped: (atByte) =>
          events.write('output-capped', {
            stream,
            atByte,
            maxOutputBytes,
            message: `${stream} reached the worker's cap of ${maxOutputBytes} bytes: the file ends here; the rest is counted, not written, and the job goes on`,
          }),
      });
    return new RunOutput(events, liveEvents, capture('stdout', keptOut), capture('stderr', keptErr), {
      stdout: keptOut?.bytes ?? 0,
      stderr: keptErr?.bytes ?? 0,
    });
  }

  /** A running container followed from now on, with no runtime copy to replay: a gap in its output. */
  noteGap(whileWhat: string): void {
    this.events.write('warning', {
      message: `output written while ${whileWhat} is not kept (the log driver keeps no copy)`,
    });
  }

  /** Ends stdout and stderr; a file that failed is reported through `failed` (its tail and count stay). */
  async closeStreams(failed: (error: unknown) => void): Promise<void> {
    for (const capture of [this.stdout, this.stderr]) await capture.close().catch(failed);
  }

  /** Ends events.log and its live copy; a failed file is logged, since the live copy has the lines. */
  async closeEvents(log: Logger): Promise<void> {
    await this.events.close();
    if (this.events.failure)
      log.warn({ err: this.events.failure }, 'could not write events.log; its live copy has the lines');
    await this.liveEvents?.finish();
  }
}
