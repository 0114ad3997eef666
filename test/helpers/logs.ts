import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';

/**
 * A logger that keeps what it logs at `level` and above, so a test can assert that nothing went
 * wrong quietly (and show why when something did).
 */
export function recordingLogger(level: 'warn' | 'info' | 'debug' = 'warn'): {
  logger: Logger;
  lines: () => string[];
} {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString().trim());
      callback();
    },
  });
  return { logger: pino({ level }, sink), lines: () => [...lines] };
}
