import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Dashboard, type DashboardOptions, startDashboard } from '../../src/dashboard/server.js';
import { stevedore } from '../helpers/cli.js';
import { freePort } from '../helpers/compose.js';
import { busybox, until, useTestWorld } from '../helpers/stevedore.js';

// The dashboard against a real Redis, a real worker and engine, in Debian's headless Chromium.
const world = useTestWorld();
/** The README's screenshot is rewritten only when asked (STEVEDORE_UPDATE_SCREENSHOT=1), so a test run leaves the tree clean. */
const SCREENSHOT =
  process.env.STEVEDORE_UPDATE_SCREENSHOT === '1'
    ? join(import.meta.dirname, '..', '..', 'docs', 'dashboard.png')
    : join(tmpdir(), `stevedore-dashboard-${process.pid}.png`);
const TOKEN = 'test-dashboard-token-0123456789';
/** Generous: a loaded two-core machine may take seconds to load an image and start a container. */
const SLOW_MS = 60_000;

let browser: Browser;
let dashboard: Dashboard | undefined;
const dirs: string[] = [];

beforeAll(async () => {
  // docs/pitfalls: without these flags Chromium tries to reach hosts this machine cannot.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  if (SCREENSHOT.startsWith(tmpdir())) await rm(SCREENSHOT, { force: true });
});

afterEach(async () => {
  await dashboard?.close();
  dashboard = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A dashboard on the test's queue, on a port the OS picks; its log lines are kept in `logged`. */
async function open(overrides: Partial<DashboardOptions> = {}): Promise<{ base: string; logged: string[] }> {
  const logged: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logged.push(String(chunk));
      done();
    },
  });
  dashboard = await startDashboard({
    listen: { host: '127.0.0.1', port: 0 },
    redis: world.redis.url,
    queue: world.h.queue,
    logger: pino({ level: 'debug' }, sink),
    ...overrides,
  });
  return { base: `http://127.0.0.1:${dashboard.address.port}`, logged };
}

describe('the dashboard in a browser', () => {
  it('shows a job go from waiting to running with its output live, cancels another from the page, and shows both results', async () => {
    const client = world.h.client();
    const gate = await mkdtemp(join(tmpdir(), 'stevedore-dash-gate-'));
    dirs.push(gate);
    // Prints a few lines slowly, then holds until the test opens the gate: its output is seen
    // while it runs, whatever the machine's speed.
    const slow = await client.submit(
      busybox(
        [
          'sh',
          '-c',
          'for i in 1 2 3; do echo line-$i; echo warn-$i >&2; sleep 0.3; done; while [ ! -e /gate/open ]; do sleep 0.1; done; echo last-line',
        ],
        { mounts: { '/gate': { hostPath: gate, readOnly: true } } },
      ),
    );
    const { base } = await open();
    const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
    try {
      // No worker yet: the job waits, and the page says so.
      await page.goto(`${base}/job?id=${encodeURIComponent(slow.id)}`);
      expect(await page.textContent('#phase')).toBe('queued');
      // The words of stevedore status (getStatus): nobody serves the queue yet.
      expect(await page.textContent('#waiting')).toMatch(/^next in line; no worker on this queue/);
      expect(await page.textContent('#state')).toBe('waiting');
      // Which run, and the reruns its budgets have left: the words of stevedore status too.
      expect(await page.textContent('#runs')).toBe(
        "run 1 next; reruns left: none from limit (the job's own failures), 2 of 2 from infra (infrastructure failures)",
      );
      await page.evaluate(() => {
        (globalThis as unknown as { loadedOnce: boolean }).loadedOnce = true;
      });

      await world.h.worker({ concurrency: 2 });
      await page.locator('#phase', { hasText: /^running$/ }).waitFor({ timeout: SLOW_MS });
      await page.locator('#runs', { hasText: /^run 1 under way; / }).waitFor({ timeout: SLOW_MS });
      await page.locator('#stdout', { hasText: 'line-3' }).waitFor({ timeout: SLOW_MS });
      await page.locator('#stderr', { hasText: 'warn-3' }).waitFor({ timeout: SLOW_MS });
      // The lines came over the open page (no reload) while the job still runs.
      expect(await page.evaluate(() => (globalThis as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(
        true,
      );
      expect(await page.textContent('#stdout')).toBe('line-1\nline-2\nline-3\n');
      expect(await client.getResult(slow.id)).toBeNull();
      expect(await page.textContent('#state')).toBe('active');

      // The overview lists the worker with its capacity and the job it runs (its presence entry
      // is rewritten when a slot is taken, so this is a matter of polling).
      const worker = world.h.workers[0]?.id as string;
      await until(async () => {
        const text = await (await fetch(base)).text();
        const workers = /<table id="workers">[\s\S]*?<\/table>/.exec(text)?.[0] ?? '';
        return workers.includes(worker) && workers.includes('1 / 2') && workers.includes(`>${slow.id}</a>`);
      }, SLOW_MS);

      // A second job, cancelled from its page with the button.
      const doomed = await client.submit(busybox(['sleep', '600']));
      const other = await browser.newPage();
      await other.goto(`${base}/job?id=${encodeURIComponent(doomed.id)}`);
      await Promise.all([other.waitForURL(/notice=/), other.click('#cancel button')]);
      const notice = await other.textContent('#notice');
      expect(notice).toMatch(/^(Cancelled before it ran\.|Cancel requested)/);
      // Stopped while running, its Cancelled result completes the BullMQ job; cancelled while
      // waiting, the job is removed and only its result stays.
      const completed = notice?.startsWith('Cancel requested') ? 2 : 1;
      await other.locator('#result-state', { hasText: 'Cancelled' }).waitFor({ timeout: SLOW_MS });
      expect(await other.textContent('#result-reason')).toBe('cancelled');
      expect(await client.getResult(doomed.id)).toMatchObject({ state: 'Cancelled', reason: 'cancelled' });
      await other.close();

      // The first job finishes once let go; its page reloads by itself to show the result.
      await writeFile(join(gate, 'open'), '');
      await page.locator('#result-state', { hasText: 'Complete' }).waitFor({ timeout: SLOW_MS });
      await page.locator('#stdout', { hasText: 'last-line' }).waitFor({ timeout: SLOW_MS });
      expect(await page.textContent('#runs')).toMatch(/^ended after run 1; reruns left: /);
      const timeline = await page.textContent('#timeline');
      for (const phase of [
        'admitted',
        'loading-image',
        'creating',
        'starting',
        'running',
        'finalizing',
        'done',
      ]) {
        expect(timeline).toContain(phase);
      }
      expect(await page.textContent('#result')).toMatch(/exit code\s*0/);
      expect(await page.locator('#cancel').count()).toBe(0);
      const png = await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(png.subarray(1, 4).toString()).toBe('PNG');

      // The overview counts them; the jobs list shows the finished one with its exit code and image.
      await page.goto(base);
      expect(await page.textContent('#counts [data-state="completed"]')).toBe(String(completed));
      expect(await page.textContent('#throughput')).toContain('completed');
      await page.goto(`${base}/jobs?state=completed`);
      const row = page.locator(`#jobs tr[data-id="${slow.id}"]`);
      expect(await row.textContent()).toMatch(/exited\s*0/);
      expect(await row.textContent()).toContain('stevedore-test/busybox:1');
    } finally {
      await page.close();
    }
  });
});

describe('dashboard access', () => {
  it('refuses an address other than loopback without a token, in code and as a command', async () => {
    await expect(open({ listen: { host: '0.0.0.0', port: 0 } })).rejects.toThrow(
      /^dashboard: refusing to listen on 0\.0\.0\.0:0 without a token/,
    );
    const port = await freePort();
    const r = await stevedore(['dashboard', '--listen', `0.0.0.0:${port}`], {
      env: { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: world.h.queue, STEVEDORE_DASHBOARD_TOKEN: '' },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^stevedore: dashboard: refusing to listen on 0\\.0\\.0\\.0:${port} without a token: .*STEVEDORE_DASHBOARD_TOKEN`,
      ),
    );
  });

  it('stevedore dashboard serves the overview on its --listen address until SIGTERM', async () => {
    const port = await freePort();
    const child = stevedore(['dashboard', '--listen', `127.0.0.1:${port}`], {
      env: { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: world.h.queue },
    });
    try {
      const text = await until(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => null);
        return res?.status === 200 ? res.text() : null;
      }, SLOW_MS);
      expect(text).toContain(`queue ${world.h.queue}`);
      expect(text).toContain('No worker seen on this queue in the last 30 s.');
    } finally {
      child.kill('SIGTERM');
    }
    const exited = await child;
    expect(exited.exitCode).toBe(0);
    expect(String(exited.stdout)).toContain(`"url":"http://127.0.0.1:${port}/"`);
  });

  it('with a token, a request without it gets 401; the Bearer header, or ?token= then its cookie, get in', async () => {
    const { base, logged } = await open({ listen: { host: '0.0.0.0', port: 0 }, token: TOKEN });
    const bare = await fetch(`${base}/`);
    expect(bare.status).toBe(401);
    expect(await bare.text()).toMatch(/needs its token/);
    expect(
      (await fetch(`${base}/jobs`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status,
    ).toBe(401);
    expect((await fetch(`${base}/`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);

    const first = await fetch(`${base}/jobs?state=failed&token=${TOKEN}`, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/jobs?state=failed');
    const cookie = first.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/; HttpOnly; SameSite=Strict$/);
    const withCookie = await fetch(`${base}/jobs?state=failed`, {
      headers: { cookie: cookie.split(';')[0] as string },
    });
    expect(withCookie.status).toBe(200);

    // A cancel POST with the cookie but from another site is refused (CSRF guard).
    const forged = await fetch(`${base}/job/cancel`, {
      method: 'POST',
      headers: {
        cookie: cookie.split(';')[0] as string,
        origin: 'http://evil.example',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'id=whatever',
    });
    expect(forged.status).toBe(403);
    expect(logged.join('')).not.toContain(TOKEN);
    expect(logged.join('')).toContain('"msg":"dashboard listening"');
  });
  it('the redirect after ?token= stays on the dashboard, whatever the path (no open redirect)', async () => {
    const { base } = await open({ token: TOKEN });
    const port = new URL(base).port;
    // fetch() would normalize the path before sending it; node:http sends it as written.
    const raw = (path: string) =>
      new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, location: res.headers.location });
        });
        req.on('error', reject);
        req.end();
      });
    for (const path of [
      `/.//evil.example/?token=${TOKEN}`,
      `//evil.example/?token=${TOKEN}`,
      `/./\\evil.example/?token=${TOKEN}`,
    ]) {
      const answer = await raw(path);
      expect(answer.status, path).toBe(303);
      expect(new URL(answer.location ?? '', base).host, `${path} -> ${answer.location}`).toBe(
        new URL(base).host,
      );
    }
    expect((await raw(`/.//evil.example/?token=${TOKEN}`)).location).toBe('/evil.example/');
    expect((await raw(`/jobs?state=failed&token=${TOKEN}`)).location).toBe('/jobs?state=failed');
  });
});

describe('the jobs list', () => {
  it('pages through a few hundred waiting jobs on the server, each job once', async () => {
    const client = world.h.client();
    const submitted = new Set<string>();
    for (let i = 0; i < 230; i += 1) submitted.add((await client.submit(busybox(['true']))).id);
    const { base } = await open();
    const seen: string[] = [];
    let next: string | null = `${base}/jobs?state=waiting`;
    let pages = 0;
    while (next) {
      const text: string = await (await fetch(next)).text();
      pages += 1;
      const ids = [...text.matchAll(/<tr data-id="([^"]+)">/g)].map((m) => m[1] as string);
      expect(ids.length).toBe(pages < 5 ? 50 : 30);
      expect(text).toContain(`page ${pages} of 5 (230 jobs)`);
      seen.push(...ids);
      const link: string | undefined = /<a rel="next" href="([^"]+)">/.exec(text)?.[1];
      next = link ? `${base}${link.replaceAll('&amp;', '&')}` : null;
    }
    expect(pages).toBe(5);
    expect(seen.length).toBe(230);
    expect(new Set(seen)).toEqual(submitted);
    // A page far past the end is simply empty, not an error.
    const past = await fetch(`${base}/jobs?state=waiting&from=10000`);
    expect(past.status).toBe(200);
    expect(await past.text()).toContain('No jobs here.');
    const bad = await fetch(`${base}/jobs?state=finished`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/state=&quot;finished&quot; is not one of waiting/);
  });

  it('filters finished jobs by reason within the page it reads, saying which jobs it looked at', async () => {
    const client = world.h.client();
    await world.h.worker({ concurrency: 2 });
    const ids = await Promise.all([
      client.submit(busybox(['true'])),
      client.submit(busybox(['sh', '-c', 'exit 3'])),
      client.submit(busybox(['sh', '-c', 'kill -TERM $$'])),
    ]);
    for (const { id } of ids) await client.waitForResult(id, { timeoutMs: SLOW_MS });
    const { base } = await open();
    const signalled = await (await fetch(`${base}/jobs?state=completed&reason=signalled`)).text();
    const rows = [...signalled.matchAll(/<tr data-id="([^"]+)">/g)].map((m) => m[1]);
    expect(rows).toEqual([ids[2]?.id]);
    expect(signalled).toMatch(/Reason signalled: 1 matching among jobs 1–3 of 3 completed/);
    const exited = await (await fetch(`${base}/jobs?state=completed&reason=exited`)).text();
    expect([...exited.matchAll(/<tr data-id="([^"]+)">/g)].map((m) => m[1]).sort()).toEqual(
      [ids[0]?.id, ids[1]?.id].sort(),
    );
  });
});
