import { describe, expect, it } from 'vitest';
import { endedBefore } from '../../src/executors/docker/stop.js';

const SENT_AT = Date.parse('2026-12-06T21:30:00.500Z');

describe('endedBefore: did the container end before the signal was sent', () => {
  it('an exit earlier than the send: nothing was signalled', () => {
    expect(endedBefore('2026-12-06T21:30:00.498765432Z', SENT_AT)).toBe(true);
  });

  it('an exit in the same millisecond or later counts as the signal’s doing', () => {
    expect(endedBefore('2026-12-06T21:30:00.500999999Z', SENT_AT)).toBe(false);
    expect(endedBefore('2026-12-06T21:30:01.000000000Z', SENT_AT)).toBe(false);
  });

  it('an offset other than Z is read as such (Podman answers in local time)', () => {
    expect(endedBefore('2026-12-06T22:30:00.4+01:00', SENT_AT)).toBe(true);
  });

  it('no end yet (the engine’s zero time), none given, or one that does not parse: not before', () => {
    expect(endedBefore('0001-01-01T00:00:00Z', SENT_AT)).toBe(false);
    expect(endedBefore(undefined, SENT_AT)).toBe(false);
    expect(endedBefore('soon', SENT_AT)).toBe(false);
  });
});
