/**
 * The gateway's wire format: one TCP (or TLS) connection per exec session or forwarded
 * connection, carrying frames of `type (1 byte) | length (4 bytes, big-endian) | payload`.
 * A forward switches to raw bytes after `ready`; an exec stays framed to its end.
 */
export const FRAME = {
  /** Client → worker, JSON Hello: which job, attempt and operation, and the client's nonce. */
  hello: 0x01,
  /** Worker → client, JSON Challenge: the worker's nonce and its proof that it knows the secret. */
  challenge: 0x02,
  /** Client → worker, JSON Auth: the request, the client's proof, a signature when keys are trusted. */
  auth: 0x03,
  /** Worker → client, JSON: the session is open (for a forward, raw bytes follow). */
  ready: 0x04,
  /** Either way, JSON Refusal: the session will not open, and why; the connection then ends. */
  refused: 0x05,
  stdin: 0x10,
  stdout: 0x11,
  stderr: 0x12,
  /** Client → worker: stdin has ended (the command sees end of file). */
  stdinEnd: 0x13,
  /** Client → worker, JSON `{ cols, rows }`: the terminal changed size. */
  resize: 0x14,
  /** Worker → client, JSON Exit: how the command ended; the last frame of a session. */
  exit: 0x15,
  /** Keep-alives: a quiet session is still open, and each side learns soon when the other is gone. */
  ping: 0x20,
  pong: 0x21,
} as const;

export type FrameType = (typeof FRAME)[keyof typeof FRAME];

const KNOWN = new Set<number>(Object.values(FRAME));
const HEADER_BYTES = 5;
/** No frame carries more: stdout is cut into frames of at most this, and a larger one is a broken peer. */
export const MAX_FRAME_BYTES = 1024 * 1024;

export interface Frame {
  type: FrameType;
  payload: Buffer;
}

export function encodeFrame(type: FrameType, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  if (body.length > MAX_FRAME_BYTES) {
    throw new RangeError(
      `gateway frame of ${body.length} bytes is over ${MAX_FRAME_BYTES}: send it in parts`,
    );
  }
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

export const jsonFrame = (type: FrameType, value: unknown): Buffer =>
  encodeFrame(type, JSON.stringify(value));

/** Bytes as frames of at most MAX_FRAME_BYTES each (a large stdout chunk becomes several). */
export function* dataFrames(type: FrameType, data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; at += MAX_FRAME_BYTES) {
    yield encodeFrame(type, data.subarray(at, at + MAX_FRAME_BYTES));
  }
}

/** Why bytes from a peer are not a gateway session: it is some other service, or broken. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * Splits a byte stream into frames. `push` returns every whole frame the bytes complete; a
 * partial one waits for more. Throws FrameError on an unknown type or an oversized length.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private stopped = false;

  /**
   * @param stopAfter for a forward: the last framed message (raw bytes follow it); `push` reads
   * nothing after it, and `rest()` returns what came.
   */
  constructor(private readonly stopAfter?: FrameType) {}

  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    while (!this.stopped && this.pendingBytes >= HEADER_BYTES) {
      const head = this.peek(HEADER_BYTES);
      const type = head.readUInt8(0);
      const length = head.readUInt32BE(1);
      if (!KNOWN.has(type)) throw new FrameError(`unknown gateway frame type 0x${type.toString(16)}`);
      if (length > MAX_FRAME_BYTES) {
        throw new FrameError(`gateway frame of ${length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
      }
      if (this.pendingBytes < HEADER_BYTES + length) break;
      const whole = this.take(HEADER_BYTES + length);
      frames.push({ type: type as FrameType, payload: whole.subarray(HEADER_BYTES) });
      if (type === this.stopAfter) this.stopped = true;
    }
    return frames;
  }

  /** Bytes received after the last whole frame (a forward's first raw bytes after `ready`). */
  rest(): Buffer {
    const rest = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return rest;
  }

  private peek(n: number): Buffer {
    if ((this.pending[0]?.length ?? 0) < n) this.pending = [Buffer.concat(this.pending)];
    return (this.pending[0] as Buffer).subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    this.pending = all.length > n ? [all.subarray(n)] : [];
    this.pendingBytes -= n;
    return all.subarray(0, n);
  }
}

/** A JSON payload as an object; FrameError naming the frame when it is not one. */
export function parseJsonPayload(frame: Frame, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(frame.payload.toString('utf8'));
  } catch {
    throw new FrameError(`gateway ${what} frame is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError(`gateway ${what} frame is not a JSON object`);
  }
  return value as Record<string, unknown>;
}
