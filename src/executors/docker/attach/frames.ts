/** Docker's multiplexed stream frame header: [stream, 0, 0, 0, size(uint32 BE)]. */
const HEADER_BYTES = 8;
const STDERR_FRAME = 2;

export type StreamName = 'stdout' | 'stderr';

/**
 * Splits Docker's multiplexed output (attach or logs without a TTY) into stdout and stderr
 * payloads, byte for byte, whatever way the frames are cut into reads. Pure: it hands out views
 * of the bytes it was given and keeps none of them (only a partial header, copied).
 */
export class FrameSplitter {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private frameRemaining = 0;
  private frameStream: StreamName = 'stdout';
  /** Payload bytes handed out for each stream so far. */
  readonly written = { stdout: 0, stderr: 0 };

  /** Calls `emit` with each payload piece of `data[start, end)`, in order. */
  feed(data: Buffer, start: number, end: number, emit: (stream: StreamName, payload: Buffer) => void): void {
    let offset = start;
    while (offset < end) {
      if (this.frameRemaining === 0) {
        const take = Math.min(HEADER_BYTES - this.headerFill, end - offset);
        data.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        this.frameRemaining = this.header.readUInt32BE(4);
        // Frame 0 (stdin) never arrives without a TTY; everything that is not stderr is stdout.
        this.frameStream = this.header[0] === STDERR_FRAME ? 'stderr' : 'stdout';
        continue;
      }
      const take = Math.min(this.frameRemaining, end - offset);
      this.written[this.frameStream] += take;
      this.frameRemaining -= take;
      emit(this.frameStream, data.subarray(offset, offset + take));
      offset += take;
    }
  }

  /** At the stream's end: null when the bytes ended on a frame boundary, else the error to report. */
  endError(): Error | null {
    if (this.frameRemaining === 0 && this.headerFill === 0) return null;
    const missing =
      this.frameRemaining > 0
        ? `${this.frameRemaining} payload bytes missing`
        : `${HEADER_BYTES - this.headerFill} header bytes missing`;
    return new Error(`output stream ended inside a frame (${missing})`);
  }
}
