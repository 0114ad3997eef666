import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Headers on every answer: no caching of job data, no framing (the cancel button cannot be
 * clicked through another site's frame), no Referer to other sites (a first visit's `?token=`
 * never leaks; `no-referrer` would also make Chromium send `Origin: null` on our own form POSTs,
 * which the CSRF guard refuses), and scripts only from this dashboard (app.js).
 */
const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
};

export function send(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...extra });
  res.end(body);
}

export const sendHtml = (res: ServerResponse, status: number, body: string): void =>
  send(res, status, body, 'text/html; charset=utf-8');

export const sendJson = (res: ServerResponse, status: number, value: unknown): void =>
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8');

/** 303: the browser follows with a GET (after a POST, so a reload does not post again). */
export function redirect(res: ServerResponse, location: string, extra: Record<string, string> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, ...extra });
  res.end();
}

export function startEventStream(res: ServerResponse): void {
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' });
}

/** Largest POST body read (a cancel form is a few dozen bytes). */
const MAX_BODY_BYTES = 4096;

/** A url-encoded form body, at most MAX_BODY_BYTES. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > MAX_BODY_BYTES) throw new Error(`the request body is over ${MAX_BODY_BYTES} bytes`);
  }
  return new URLSearchParams(body);
}
