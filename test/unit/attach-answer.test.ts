import { describe, expect, it } from 'vitest';
import { AttachAnswer } from '../../src/executors/docker/attach/attach-answer.js';

const UPGRADED =
  'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';

type Taken = ReturnType<AttachAnswer['take']>;

/**
 * Feeds `bytes` in reads of `size` through one reused buffer until the answer is known: that
 * answer, and where the read that gave it started.
 */
function feed(answer: AttachAnswer, bytes: Buffer, size: number): { last: Taken; readAt: number } {
  const reused = Buffer.alloc(size);
  let last: Taken = 'more';
  let at = 0;
  for (; at < bytes.length; at += size) {
    const n = bytes.copy(reused, 0, at, at + size);
    last = answer.take(reused, n);
    reused.fill(0); // the reader's next read overwrites it
    if (last !== 'more') break;
  }
  return { last, readAt: at };
}

describe('AttachAnswer', () => {
  it('finds where the stream starts, the head cut into reads at any size', () => {
    const bytes = Buffer.concat([Buffer.from(UPGRADED), Buffer.from([1, 0, 0, 0, 0, 0, 0, 2, 104, 105])]);
    for (const size of [1, 2, 7, 50, UPGRADED.length, bytes.length]) {
      const answer = new AttachAnswer();
      const { last, readAt } = feed(answer, bytes, size);
      expect(answer.streaming).toBe(true);
      // The stream starts right after the head, inside the read that completed it.
      expect(readAt + (last as number)).toBe(UPGRADED.length);
    }
  });

  it('turns an error answer into an error like dockerode’s: status code and the engine’s message', () => {
    const body = '{"message":"No such container: abc"}\n';
    const bytes = Buffer.from(
      `HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    for (const size of [3, bytes.length]) {
      const answer = new AttachAnswer();
      expect(feed(answer, bytes, size).last).toBe('failed');
      const error = answer.error();
      expect(error.statusCode).toBe(404);
      expect(error.message).toBe('(HTTP code 404) Not Found - No such container: abc');
    }
  });

  it('reads an error body without a length up to the end of the connection', () => {
    const answer = new AttachAnswer();
    expect(feed(answer, Buffer.from('HTTP/1.1 500 Internal Server Error\r\n\r\nboom'), 64).last).toBe('more');
    expect(answer.streaming).toBe(false);
    expect(answer.error().message).toBe('(HTTP code 500) Internal Server Error - boom');
  });

  it('fails on what is not HTTP, and says so when the connection closed first', () => {
    const garbage = new AttachAnswer();
    expect(feed(garbage, Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'), 64).last).toBe('failed');
    expect(garbage.error().message).toMatch(/unreadable answer "SSH-2.0-OpenSSH"/);
    expect(new AttachAnswer().error().message).toMatch(/closed before an answer/);
  });
});
