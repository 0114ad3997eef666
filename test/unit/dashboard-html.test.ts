import { describe, expect, it } from 'vitest';
import { escapeHtml, href, html, SafeHtml } from '../../src/dashboard/html.js';
import { duration, time } from '../../src/dashboard/views/format.js';
import { jobsPage } from '../../src/dashboard/views/jobs.js';

describe('dashboard HTML escaping', () => {
  it('escapes the five characters that can end text or an attribute', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
    );
    expect(escapeHtml('plain text, ünïcode ✓')).toBe('plain text, ünïcode ✓');
  });

  it('escapes every interpolated value unless it is markup made by the tag', () => {
    const id = '<script>alert(1)</script>';
    const out = html`<td title="${id}">${id}</td>${html`<b>${'&'}</b>`}`;
    expect(out).toBeInstanceOf(SafeHtml);
    expect(out.text).toBe(
      '<td title="&lt;script&gt;alert(1)&lt;/script&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</td><b>&amp;</b>',
    );
  });

  it('renders numbers, lists and nothing-values', () => {
    expect(html`${[1, '<', html`<i></i>`]}|${null}|${undefined}|${false}|${0}`.text).toBe(
      '1&lt;<i></i>||||0',
    );
  });

  it('builds links with each parameter encoded, leaving out empty ones', () => {
    expect(href('/job', { id: 'a b&c=d/é' })).toBe('/job?id=a+b%26c%3Dd%2F%C3%A9');
    expect(href('/jobs', { state: 'failed', reason: undefined, from: 0 })).toBe('/jobs?state=failed&from=0');
    expect(href('/jobs', { reason: '' })).toBe('/jobs');
  });

  it('a hostile job id and image stay text in a rendered page', () => {
    const evil = '"><img src=x onerror=alert(1)>';
    const text = jobsPage('q<', {
      query: { state: 'waiting', reason: null, from: 0 },
      total: 1,
      counts: { waiting: 1, prioritized: 0, delayed: 0, active: 0, completed: 0, failed: 0 },
      rows: [
        {
          id: evil,
          state: 'waiting',
          image: evil,
          phase: null,
          reason: null,
          exitCode: null,
          durationMs: null,
          worker: null,
          submittedAt: 0,
        },
      ],
      window: { start: 0, end: 49, previous: null, next: null, page: 1, pages: 1 },
      scanned: null,
    });
    expect(text).not.toContain('<img');
    expect(text).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(text).toContain('queue q&lt;');
  });
});

describe('dashboard display forms', () => {
  it('durations in the unit a reader wants', () => {
    expect([duration(null), duration(250), duration(1_500), duration(125_000), duration(3_723_000)]).toEqual([
      '',
      '250 ms',
      '1.5 s',
      '2 min 5 s',
      '1 h 2 min',
    ]);
  });

  it('times in UTC to the second', () => {
    expect(time('2026-12-02T04:05:06.789Z')).toBe('2026-12-02 04:05:06Z');
    expect(time(0)).toBe('1970-01-01 00:00:00Z');
    expect(time(null)).toBe('');
  });
});
