import type { Socket } from 'node:net';
import {
  dataFrames,
  encodeFrame,
  FRAME,
  type Frame,
  FrameReader,
  type FrameType,
  jsonFrame,
} from './frames.js';
import { DEFAULT_KEEPALIVE, type Keepalive } from './keepalive.js';

export interface FramedSocketOptions {
  onFrame: (frame: Frame) => void;
  /** Called once, when the connection ends for any reason; `error` says why when it was not a clean end. */
  onClose: (error: Error | null) => void;
  /** The last framed message before raw bytes (a forward's `ready`/`auth`). */
  stopAfter?: FrameType;
  /** How often to ping a quiet peer, and how long a silent one is given (default: 10 s and 35 s). */
  keepalive?: Keepalive;
}

/**
 * A gateway connection as frames: it answers pings, pings a quiet peer, ends a silent one, and
 * has an error listener for its whole life, so a reset from the far side never throws.
 */
export class FramedSocket {
  private readonly reader: FrameReader;
  private lastHeard = Date.now();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private raw = false;

  constructor(
    readonly socket: Socket,
    private readonly options: FramedSocketOptions,
  ) {
    this.reader = new FrameReader(options.stopAfter);
    const { pingMs, peerTimeoutMs } = options.keepalive ?? DEFAULT_KEEPALIVE;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, pingMs);
    socket.on('data', this.onData);
    socket.on('error', (error) => this.close(error));
    socket.on('close', () => this.close(null));
    this.timer = setInterval(() => {
      if (this.raw) return;
      if (Date.now() - this.lastHeard > peerTimeoutMs) {
        this.close(
          new Error(`the other side sent nothing for ${Math.round((Date.now() - this.lastHeard) / 1000)} s`),
        );
        return;
      }
      this.send(FRAME.ping);
    }, pingMs);
    this.timer.unref();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastHeard = Date.now();
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.close(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      if (frame.type === FRAME.ping) this.send(FRAME.pong);
      else if (frame.type !== FRAME.pong) {
        // A handler that throws here would throw out of a socket event: an uncaught exception
        // that ends the process. It ends this connection instead, saying why.
        try {
          this.options.onFrame(frame);
        } catch (error) {
          const text = error instanceof Error ? error.message : String(error);
          this.close(
            new Error(`handling a gateway frame of type 0x${frame.type.toString(16)} failed: ${text}`),
          );
          return;
        }
      }
    }
  };

  /** Sends data as frames (cut at MAX_FRAME_BYTES); false when the socket's buffer is full (wait for `drain`). */
  send(type: FrameType, payload: Buffer | string = Buffer.alloc(0)): boolean {
    if (!this.writable) return false;
    const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (body.length === 0) return this.socket.write(encodeFrame(type));
    let room = true;
    for (const frame of dataFrames(type, body)) room = this.socket.write(frame);
    return room;
  }

  sendJson(type: FrameType, value: unknown): boolean {
    if (!this.writable) return false;
    return this.socket.write(jsonFrame(type, value));
  }

  /**
   * Stops reading frames: the socket carries raw bytes from here on (a forward), starting with
   * what came after the last frame. Pings stop; TCP keep-alive still finds a dead peer. The
   * socket is left paused.
   */
  goRaw(): Buffer {
    this.raw = true;
    this.socket.off('data', this.onData);
    // Paused, so no byte is lost before the new reader attaches (it resumes, or pipe() does).
    this.socket.pause();
    return this.reader.rest();
  }

  /** Ends the connection after what is written has gone. */
  end(): void {
    clearInterval(this.timer);
    this.socket.end();
  }

  close(error: Error | null): void {
    clearInterval(this.timer);
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.options.onClose(error);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Whether the socket carries raw bytes now (goRaw). */
  get isRaw(): boolean {
    return this.raw;
  }

  /** Open and not ended: a write after end() would be an 'error' on the socket, so none is tried. */
  private get writable(): boolean {
    return !this.closed && !this.socket.destroyed && !this.socket.writableEnded;
  }
}
