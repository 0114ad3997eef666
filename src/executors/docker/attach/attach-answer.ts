/** The engine's answer head (status line and headers) is never longer than this. */
const MAX_HEAD_BYTES = 16 * 1024;
/** How much of an error answer's body is kept for the message. */
const MAX_ERROR_BODY_BYTES = 16 * 1024;

/** The engine's HTTP answer before the stream: 101 (or 200) starts it, anything else is an error. */
export class AttachAnswer {
  private state: 'head' | 'error-body' | 'streaming' | 'failed' = 'head';
  private head = Buffer.alloc(0);
  private status = 0;
  private reason = 'the connection closed before an answer';
  private bodyLength = MAX_ERROR_BODY_BYTES;
  private body = Buffer.alloc(0);

  /** The answer allowed the stream, and the bytes after its head are the container's output. */
  get streaming(): boolean {
    return this.state === 'streaming';
  }

  /** Takes the bytes of one read: where in them the stream starts, or that more is needed, or failure. */
  take(buffer: Buffer, nread: number): number | 'more' | 'failed' {
    if (this.state === 'error-body') return this.addBody(buffer.subarray(0, nread));
    // Copied: the read buffer is reused, and a head may come in more than one read.
    const before = this.head.length;
    this.head = Buffer.concat([this.head, buffer.subarray(0, nread)]);
    const end = this.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.head.length <= MAX_HEAD_BYTES) return 'more';
      this.reason = 'answer head too long';
      this.state = 'failed';
      return 'failed';
    }
    const lines = this.head.subarray(0, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
    if (!status) {
      this.reason = `unreadable answer ${JSON.stringify(lines[0]?.slice(0, 100))}`;
      this.state = 'failed';
      return 'failed';
    }
    this.status = Number(status[1]);
    this.reason = status[2] ?? '';
    const streamStart = end + 4 - before;
    if (this.status === 101 || this.status === 200) {
      this.state = 'streaming';
      return streamStart;
    }
    const length = lines.find((l) => /^content-length:/i.test(l));
    const declared = Number(length?.split(':')[1]);
    if (Number.isInteger(declared)) this.bodyLength = Math.min(declared, MAX_ERROR_BODY_BYTES);
    this.state = 'error-body';
    return this.addBody(this.head.subarray(end + 4));
  }

  private addBody(bytes: Buffer): 'more' | 'failed' {
    this.body = Buffer.concat([this.body, bytes]).subarray(0, MAX_ERROR_BODY_BYTES);
    if (this.body.length < this.bodyLength) return 'more';
    this.state = 'failed';
    return 'failed';
  }

  /** The error to report, shaped like dockerode's (statusCode, "(HTTP code N) reason - message"). */
  error(): Error & { statusCode?: number } {
    const text = this.body.toString('utf8').trim();
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not JSON: the text as it is
    }
    if (this.status === 0) return new Error(`the docker engine's attach answer: ${this.reason}`);
    const error: Error & { statusCode?: number } = new Error(
      `(HTTP code ${this.status}) ${this.reason} - ${message || 'no message'}`,
    );
    error.statusCode = this.status;
    return error;
  }
}
