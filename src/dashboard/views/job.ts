import { exitCell, NONE, ruleCell, whyCell } from '../../jobs/attempt-cells.js';
import type { CancelOutcome } from '../../jobs/cancellation.js';
import type { AttemptRecord, JobResult } from '../../jobs/result.js';
import { href, html, type SafeHtml } from '../html.js';
import type { JobDetail } from '../model.js';
import { bytes, duration, time } from './format.js';
import { page } from './layout.js';

const NOTICES: Record<CancelOutcome, string> = {
  cancelled: 'Cancelled before it ran.',
  cancelling: 'Cancel requested: its worker is stopping the container.',
  finished: 'It had already finished; nothing to cancel.',
};

/** An argument as a shell would need it, so the command reads as what ran. */
function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

function summary(j: JobDetail): SafeHtml {
  const phase = j.result ? 'done' : (j.progress?.phase ?? 'queued');
  return html`<dl id="summary">
<dt>state</dt><dd id="state" class="state">${j.state}</dd>
<dt>phase</dt><dd id="phase">${phase}</dd>
${j.result ? '' : html`<dt>waiting</dt><dd id="waiting">${j.waiting ?? '—'}</dd>`}
<dt>runs</dt><dd id="runs">${j.runs ?? '—'}</dd>
<dt>image</dt><dd>${j.image}</dd>
<dt>command</dt><dd><code>${j.command.map(shellWord).join(' ')}</code></dd>
<dt>submitted</dt><dd>${time(j.submittedAt)}</dd>
${j.progress ? html`<dt>worker</dt><dd>${j.progress.worker} (run ${j.progress.attempt})</dd>` : ''}
${j.progress?.containerId ? html`<dt>container</dt><dd><code>${j.progress.containerId.slice(0, 12)}</code></dd>` : ''}
</dl>`;
}

function cancelForm(j: JobDetail): SafeHtml {
  if (j.result) return html``;
  return html`<form id="cancel" method="post" action="/job/cancel"><input type="hidden" name="id" value="${j.id}">
<button type="submit">Cancel this job</button> <span class="note">the same durable cancel as <code>stevedore cancel</code></span></form>`;
}

function timeline(j: JobDetail): SafeHtml {
  const history = j.progress?.history ?? [];
  if (history.length === 0)
    return html`<h2>Timeline</h2><p class="note">No phase yet: no worker has taken it.</p>`;
  const end = j.result ? Date.parse(j.result.finishedAt) : Date.now();
  return html`<h2>Timeline</h2><table id="timeline"><tr><th>phase</th><th>at</th><th class="num">for</th></tr>
${history.map((h, i) => {
  const next = history[i + 1];
  const until = next ? Date.parse(next.at) : h.phase === 'done' ? null : end;
  return html`<tr><td>${h.phase}</td><td>${time(h.at)}</td><td class="num">${until === null ? '' : duration(until - Date.parse(h.at))}</td></tr>`;
})}</table>`;
}

function result(r: JobResult | null): SafeHtml {
  if (!r) return html``;
  const phases = Object.entries(r.phases);
  return html`<h2>Result</h2><dl id="result">
<dt>state</dt><dd id="result-state" class="state ${r.state}">${r.state}</dd>
<dt>reason</dt><dd id="result-reason">${r.reason}</dd>
<dt>exit code</dt><dd>${r.exitCode ?? '—'}${r.signal ? ` (${r.signal})` : ''}${r.oomKilled ? ', OOM killed' : ''}</dd>
${r.error ? html`<dt>error</dt><dd>${r.error.phase}: ${r.error.message}</dd>` : ''}
<dt>started</dt><dd>${time(r.startedAt)}</dd><dt>finished</dt><dd>${time(r.finishedAt)}</dd>
<dt>worker</dt><dd>${r.worker ? `${r.worker.host} (${r.worker.id})` : '—'}, run ${r.attempt}${r.adopted ? ', adopted' : ''}</dd>
<dt>runtime</dt><dd>${r.runtime ?? '—'}</dd>
<dt>image id</dt><dd><code>${r.imageDigest ?? r.imageId ?? '—'}</code></dd>
<dt>CPU</dt><dd>${r.usage?.cpuSeconds != null ? `${r.usage.cpuSeconds.toFixed(2)} s` : '—'}</dd>
<dt>peak memory</dt><dd>${bytes(r.usage?.peakMemoryBytes) || '—'}</dd>
<dt>block I/O</dt><dd>${bytes(r.usage?.blockIoBytes) || '—'}</dd>
<dt>stdout / stderr</dt><dd>${bytes(r.stdout.bytes)} / ${bytes(r.stderr.bytes)}${r.stdout.path ? html` <span class="note">full text on the worker host: ${r.stdout.path}</span>` : ''}</dd>
${phases.length > 0 ? html`<dt>phases</dt><dd>${phases.map(([p, ms], i) => html`${i > 0 ? ' · ' : ''}${p} ${duration(ms)}`)}</dd>` : ''}
</dl>`;
}

/** Every run of the job, as `stevedore result --table` prints them. */
function attempts(list: AttemptRecord[]): SafeHtml {
  if (list.length === 0) return html``;
  return html`<h2>Runs</h2><table id="attempts"><tr><th>run</th><th>worker</th><th>started</th><th>ended</th><th>state</th><th>reason</th><th>exit</th><th>rule</th><th>retried</th><th>why</th></tr>
${list.map(
  (a) =>
    html`<tr><td class="num">${a.attempt}</td><td>${a.worker}</td><td>${a.startedAt ? time(a.startedAt) : NONE}</td><td>${a.finishedAt ? time(a.finishedAt) : NONE}</td><td>${a.state}</td><td>${a.reason}</td><td>${exitCell(a)}</td><td>${ruleCell(a.rule)}</td><td>${a.retried === undefined ? NONE : a.retried ? 'yes' : 'no'}</td><td>${whyCell(a)}</td></tr>`,
)}</table>`;
}

function logs(j: JobDetail): SafeHtml {
  const stream = (name: 'stdout' | 'stderr'): SafeHtml =>
    html`<h3>${name}</h3><pre id="${name}" class="${name}" data-src="${href('/job/logs', { id: j.id, stream: name })}"></pre>`;
  return html`<h2>Output</h2><p class="note" id="log-note">${j.result ? 'As kept in Redis (the last 1 MiB of each stream by default).' : 'Live: lines appear as the container writes them.'}</p>
${stream('stdout')}${stream('stderr')}`;
}

export function jobPage(queue: string, j: JobDetail, notice: CancelOutcome | null): string {
  return page(
    `Job ${j.id}`,
    queue,
    html`<h2>Job <code>${j.id}</code></h2>
<div id="job" data-status="${href('/job/status', { id: j.id })}" data-finished="${j.result ? 'true' : 'false'}">
${notice ? html`<p id="notice" class="note">${NOTICES[notice]}</p>` : ''}
${summary(j)}${cancelForm(j)}${timeline(j)}${result(j.result)}${attempts(j.result?.attempts ?? j.earlierRuns)}${logs(j)}
</div>`,
  );
}

export function isCancelOutcome(value: string | null): value is CancelOutcome {
  return value !== null && Object.hasOwn(NOTICES, value);
}
