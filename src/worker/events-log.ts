import { createWriteStream, type WriteStream } from 'node:fs';

/**
 * The run's own timestamped account of itself (`events.log` beside stdout and stderr):
 * phases, runtime, image, limits and every decision, one line each:
 * `2026-11-27T20:00:00.000Z running {"containerId":"…"}`. Env values are never written.
 */
export class EventsLog {
  private readonly file: WriteStream | null;

  constructor(
    path: string | null,
    private readonly publish: (line: Buffer) => void = () => undefined,
  ) {
    this.file = path ? createWriteStream(path, { flags: 'a' }) : null;
  }

  write(event: string, details: Record<string, unknown> = {}): void {
    const extra = Object.keys(details).length > 0 ? ` ${JSON.stringify(details)}` : '';
    const line = Buffer.from(`${new Date().toISOString()} ${event}${extra}\n`);
    this.file?.write(line);
    this.publish(line);
  }

  async close(): Promise<void> {
    const file = this.file;
    if (!file || file.closed) return;
    await new Promise<void>((resolve) => file.end(() => resolve()));
  }
}
