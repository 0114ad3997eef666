import { describe, expect, it } from 'vitest';
import {
  FILTER_SCAN_LIMIT,
  PAGE_SIZE,
  pageWindow,
  parseListQuery,
  scanChunks,
  takeMatching,
} from '../../src/dashboard/list-query.js';
import { minuteBuckets } from '../../src/dashboard/throughput.js';

const q = (text: string) => parseListQuery(new URLSearchParams(text));

describe('jobs list query', () => {
  it('defaults to the first page of waiting jobs with any reason', () => {
    expect(q('')).toEqual({ state: 'waiting', reason: null, from: 0 });
    expect(q('state=failed&reason=infra&from=100')).toEqual({ state: 'failed', reason: 'infra', from: 100 });
  });

  it('names the parameter that is wrong and what it takes', () => {
    expect(() => q('state=done')).toThrow(
      /^state="done" is not one of waiting, prioritized, delayed, active/,
    );
    expect(() => q('reason=crashed')).toThrow(/^reason="crashed" is not one of exited, signalled/);
    expect(() => q('from=-1')).toThrow(/^from="-1" is not a whole number/);
    expect(() => q('from=1.5')).toThrow(/^from="1.5"/);
  });
});

describe('pagination', () => {
  it('pages a list of 10,000 in pages of 50, snapping an offset to its page', () => {
    expect(pageWindow(0, 10_000)).toEqual({
      start: 0,
      end: 49,
      previous: null,
      next: 50,
      page: 1,
      pages: 200,
    });
    expect(pageWindow(120, 10_000)).toEqual({
      start: 100,
      end: 149,
      previous: 50,
      next: 150,
      page: 3,
      pages: 200,
    });
    expect(pageWindow(9_950, 10_000)).toMatchObject({ next: null, page: 200 });
  });

  it('an empty or short list is one page', () => {
    expect(pageWindow(0, 0)).toMatchObject({ previous: null, next: null, page: 1, pages: 1 });
    expect(pageWindow(0, PAGE_SIZE)).toMatchObject({ next: null, pages: 1 });
    expect(pageWindow(0, PAGE_SIZE + 1)).toMatchObject({ next: PAGE_SIZE, pages: 2 });
  });

  it('a filtered page reads at most the scan limit, in chunks, never past the list', () => {
    const chunks = scanChunks(0, 10_000);
    expect(chunks).toHaveLength(FILTER_SCAN_LIMIT / PAGE_SIZE);
    expect(chunks[0]).toEqual({ start: 0, end: 49 });
    expect(chunks.at(-1)).toEqual({ start: FILTER_SCAN_LIMIT - 50, end: FILTER_SCAN_LIMIT - 1 });
    expect(scanChunks(9_980, 10_000)).toEqual([{ start: 9_980, end: 9_999 }]);
    expect(scanChunks(120, 130, 50, 500)).toEqual([{ start: 120, end: 129 }]);
    expect(scanChunks(10_000, 10_000)).toEqual([]);
  });

  it('keeps matches until the page is full and says where the next page starts', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(takeMatching(items, 100, (n) => n % 2 === 0, 3)).toEqual({
      kept: [0, 2, 4],
      nextOffset: 105,
      full: true,
    });
    expect(takeMatching(items, 100, (n) => n > 7, 3)).toEqual({ kept: [8, 9], nextOffset: 110, full: false });
    // Two already on the page from an earlier chunk: one more fills it.
    expect(takeMatching(items, 0, () => true, 3, 2)).toEqual({ kept: [0], nextOffset: 1, full: true });
  });
});

describe('throughput minutes', () => {
  it('are the last whole minutes and the one under way, oldest first', () => {
    const now = Date.parse('2026-12-02T10:15:30Z');
    const buckets = minuteBuckets(now, 3);
    expect(buckets.map((b) => new Date(b.from).toISOString().slice(11, 16))).toEqual([
      '10:12',
      '10:13',
      '10:14',
      '10:15',
    ]);
    expect(buckets.every((b) => b.to - b.from === 60_000)).toBe(true);
  });
});
