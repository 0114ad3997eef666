import { href, html, type SafeHtml } from '../html.js';
import type { Overview, WorkerRow } from '../model.js';
import { time } from './format.js';
import { page } from './layout.js';

function counts(o: Overview): SafeHtml {
  const states = Object.keys(o.counts);
  return html`<h2>Jobs by state</h2>
<table id="counts"><tr>${states.map((s) => html`<th><a href="${href('/jobs', { state: s })}">${s}</a></th>`)}</tr>
<tr>${states.map((s) => html`<td class="num" data-state="${s}">${o.counts[s] ?? 0}</td>`)}</tr></table>`;
}

function throughput(o: Overview): SafeHtml {
  const most = Math.max(1, ...o.throughput.map((m) => m.completed + m.failed));
  const total = o.throughput.reduce((n, m) => n + m.completed + m.failed, 0);
  const width = (n: number): string => `width:${Math.round((n / most) * 240)}px`;
  return html`<h2>Throughput</h2>
<p class="note">Jobs finished per minute (UTC), the last ${o.throughput.length - 1} minutes and the one under way: ${total} in all.</p>
<table id="throughput"><tr><th>minute</th><th class="num">completed</th><th class="num">failed</th><th></th></tr>
${o.throughput.map(
  (
    m,
  ) => html`<tr><td>${time(m.from).slice(11, 16)}</td><td class="num">${m.completed}</td><td class="num">${m.failed}</td>
<td><span class="bar" style="${width(m.completed)}"></span><span class="bar failed" style="${width(m.failed)}"></span></td></tr>`,
)}</table>`;
}

function workerRow(w: WorkerRow): SafeHtml {
  return html`<tr><td>${w.id}</td><td>${w.host}</td><td class="num">${w.pid}</td>
<td class="num">${w.running.length} / ${w.capacity}</td>
<td>${w.running.map((id, i) => html`${i > 0 ? ', ' : ''}<a href="${href('/job', { id })}">${id}</a>`)}</td>
<td>${time(w.startedAt)}</td><td>${time(w.seenAt)}</td></tr>`;
}

function workers(o: Overview): SafeHtml {
  if (o.workers.length === 0) {
    return html`<h2>Workers</h2><p id="workers" class="note">No worker seen on this queue in the last 30 s.</p>`;
  }
  const capacity = o.workers.reduce((n, w) => n + w.capacity, 0);
  const running = o.workers.reduce((n, w) => n + w.running.length, 0);
  return html`<h2>Workers</h2><p class="note">${o.workers.length} workers, ${running} of ${capacity} slots in use.</p>
<table id="workers"><tr><th>id</th><th>host</th><th>pid</th><th>running / capacity</th><th>jobs</th><th>started</th><th>seen</th></tr>
${o.workers.map(workerRow)}</table>`;
}

export function overviewPage(o: Overview): string {
  return page('Overview', o.queue, html`${counts(o)}${throughput(o)}${workers(o)}`);
}
