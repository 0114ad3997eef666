import { createWriteStream, type WriteStream } from 'node:fs';

/**
 * The run's own timestamped account of itself (`events.log` beside stdout and stderr):
 * phases, runtime, image, limits and every decision, one line each:
 * `2026-11-27T20:00:00.000Z running {"containerId":"…"}`. Env values are never written.
 */
export class EventsLog {
  private file: WriteStream | null;
  /** Why the file stopped taking lines (disk full, say); the live copy still gets them. */
  failure: Error | null = null;

  constructor(
    path: string | null,
    private readonly publish: (line: Buffer) => void = () => undefined,
  ) {
    const file = path ? createWriteStream(path, { flags: 'a' }) : null;
    // A failing file must not crash the worker (an unhandled 'error'): it is reported instead.
    file?.on('error', (error) => {
      this.failure ??= error;
      this.file = null;
    });
    this.file = file;
  }

  write(event: string, details: Record<string, unknown> = {}): void {
    const extra = Object.keys(details).length > 0 ? ` ${JSON.stringify(details)}` : '';
    const line = Buffer.from(`${new Date().toISOString()} ${event}${extra}\n`);
    this.file?.write(line);
    this.publish(line);
  }

  async close(): Promise<void> {
    const file = this.file;
    this.file = null;
    if (!file || file.closed) return;
    // end()'s callback also comes on a failure, before the 'error' event.
    await new Promise<void>((resolve) =>
      file.end((error?: Error | null) => {
        if (error) this.failure ??= error;
        resolve();
      }),
    );
  }
}
