import { href, html, type SafeHtml } from '../html.js';
import { FILTER_SCAN_LIMIT, LIST_STATES, PAGE_SIZE, REASONS } from '../list-query.js';
import type { JobRow, JobsPage } from '../model.js';
import { duration, time } from './format.js';
import { page } from './layout.js';

function filters(p: JobsPage): SafeHtml {
  const { state, reason } = p.query;
  const finished = state === 'completed' || state === 'failed';
  return html`<nav class="filters" id="states">State: ${LIST_STATES.map(
    (s) =>
      html`<a class="${s === state ? 'on' : ''}" href="${href('/jobs', { state: s, reason: reason ?? undefined })}">${s} (${p.counts[s]})</a>`,
  )}</nav>
${
  finished
    ? html`<nav class="filters" id="reasons">Reason: <a class="${reason === null ? 'on' : ''}" href="${href('/jobs', { state })}">any</a>${REASONS.map(
        (r) =>
          html`<a class="${r === reason ? 'on' : ''}" href="${href('/jobs', { state, reason: r })}">${r}</a>`,
      )}</nav>`
    : ''
}`;
}

function row(r: JobRow): SafeHtml {
  return html`<tr data-id="${r.id}"><td><a href="${href('/job', { id: r.id })}">${r.id}</a></td>
<td>${r.phase ?? r.state}</td><td>${r.reason ?? ''}</td><td class="num">${r.exitCode ?? ''}</td>
<td class="num">${duration(r.durationMs)}</td><td>${r.image}</td><td>${r.worker ?? ''}</td><td>${time(r.submittedAt)}</td></tr>`;
}

function pager(p: JobsPage): SafeHtml {
  const { state, reason } = p.query;
  const link = (from: number | null, text: string): SafeHtml =>
    from === null
      ? html`<span class="note">${text}</span>`
      : html`<a rel="${text === 'next' ? 'next' : 'prev'}" href="${href('/jobs', { state, reason: reason ?? undefined, from })}">${text}</a>`;
  if (p.window) {
    return html`<p id="pager">${link(p.window.previous, 'previous')} · page ${p.window.page} of ${p.window.pages} (${p.total} jobs) · ${link(p.window.next, 'next')}</p>`;
  }
  const s = p.scanned as NonNullable<JobsPage['scanned']>;
  return html`<p id="pager" class="note">Reason ${reason}: ${p.rows.length} matching among jobs ${s.from + 1}–${s.to} of ${p.total} ${state}.
A filtered page looks at most ${FILTER_SCAN_LIMIT} jobs of the list (never all of it) and stops at ${PAGE_SIZE} matches. ${link(s.next, 'next')}</p>`;
}

export function jobsPage(queue: string, p: JobsPage): string {
  return page(
    'Jobs',
    queue,
    html`<h2>Jobs</h2>${filters(p)}
<table id="jobs"><tr><th>id</th><th>state</th><th>reason</th><th>exit</th><th>duration</th><th>image</th><th>worker</th><th>submitted</th></tr>
${p.rows.map(row)}</table>
${p.rows.length === 0 ? html`<p class="note">No jobs here.</p>` : ''}${pager(p)}`,
  );
}
