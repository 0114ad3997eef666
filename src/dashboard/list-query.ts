import type { RunReason } from '../jobs/result.js';

/** The states the jobs list can show, each one BullMQ list or set read a page at a time. */
export const LIST_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
export type ListState = (typeof LIST_STATES)[number];

export const REASONS: readonly RunReason[] = [
  'exited',
  'signalled',
  'oom',
  'timeout',
  'cancelled',
  'infra',
  'invalid',
  'image',
];

/** Jobs on one page of the list. */
export const PAGE_SIZE = 50;
/**
 * Most jobs one filtered page looks at: a reason filter reads the state's list from `from` on,
 * at most this many, and stops when a page is full; the next page goes on from there. So no
 * request reads all of a 10,000-job list, and the page says which jobs it looked at.
 */
export const FILTER_SCAN_LIMIT = 500;

export interface ListQuery {
  state: ListState;
  reason: RunReason | null;
  /** Offset into the state's list (newest first for finished jobs, as BullMQ orders them). */
  from: number;
}

export class ListQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListQueryError';
  }
}

/** The list's query string, checked: a bad value is an error naming the parameter and what it takes. */
export function parseListQuery(params: URLSearchParams): ListQuery {
  const state = params.get('state') || 'waiting';
  if (!(LIST_STATES as readonly string[]).includes(state)) {
    throw new ListQueryError(`state=${JSON.stringify(state)} is not one of ${LIST_STATES.join(', ')}`);
  }
  const reason = params.get('reason') || null;
  if (reason !== null && !(REASONS as readonly string[]).includes(reason)) {
    throw new ListQueryError(`reason=${JSON.stringify(reason)} is not one of ${REASONS.join(', ')}`);
  }
  const fromText = params.get('from') || '0';
  const from = Number(fromText);
  if (!Number.isSafeInteger(from) || from < 0) {
    throw new ListQueryError(`from=${JSON.stringify(fromText)} is not a whole number of jobs to skip`);
  }
  return { state: state as ListState, reason: reason as RunReason | null, from };
}

/** Where a plain page starts and ends in a list of `total`, and the offsets of its neighbours. */
export interface PageWindow {
  /** Inclusive offsets for BullMQ's getJobs(type, start, end). */
  start: number;
  end: number;
  previous: number | null;
  next: number | null;
  /** 1-based page number and page count, for "page 3 of 200". */
  page: number;
  pages: number;
}

export function pageWindow(from: number, total: number, size = PAGE_SIZE): PageWindow {
  const start = Math.floor(from / size) * size;
  const pages = Math.max(1, Math.ceil(total / size));
  return {
    start,
    end: start + size - 1,
    previous: start > 0 ? Math.max(0, start - size) : null,
    next: start + size < total ? start + size : null,
    page: Math.floor(start / size) + 1,
    pages,
  };
}

/** The chunks a filtered page reads: from `from`, CHUNK at a time, never past the scan limit or the list. */
export function scanChunks(
  from: number,
  total: number,
  chunk = PAGE_SIZE,
  limit = FILTER_SCAN_LIMIT,
): { start: number; end: number }[] {
  const stop = Math.min(total, from + limit);
  const chunks: { start: number; end: number }[] = [];
  for (let start = from; start < stop; start += chunk) {
    chunks.push({ start, end: Math.min(stop, start + chunk) - 1 });
  }
  return chunks;
}

/**
 * Keeps the items that match, in order, until `size` of them; returns them with the offset just
 * past the last item looked at (where the next page starts).
 */
export function takeMatching<T>(
  items: readonly T[],
  offset: number,
  matches: (item: T) => boolean,
  size = PAGE_SIZE,
  already = 0,
): { kept: T[]; nextOffset: number; full: boolean } {
  const kept: T[] = [];
  let i = 0;
  for (; i < items.length && already + kept.length < size; i += 1) {
    if (matches(items[i] as T)) kept.push(items[i] as T);
  }
  return { kept, nextOffset: offset + i, full: already + kept.length >= size };
}
