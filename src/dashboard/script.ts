/**
 * The page's one script, served as /app.js (the CSP allows scripts from this dashboard only).
 * On a job page: each <pre data-src> follows its stream over SSE, keeping the last MAX_TEXT
 * characters; while the job is unfinished, its state, phase, waiting reason and runs are polled
 * once a second, and the page reloads once it has finished, to show the result.
 */
export const APP_JS = `'use strict';
(() => {
  const MAX_TEXT = 65536;
  const POLL_MS = 1000;
  const job = document.getElementById('job');
  if (!job) return;
  for (const pre of document.querySelectorAll('pre[data-src]')) {
    const source = new EventSource(pre.dataset.src);
    // Each (re)connect replays what Redis keeps, so the text starts over.
    source.addEventListener('open', () => { pre.textContent = ''; });
    source.addEventListener('chunk', (e) => {
      pre.append(JSON.parse(e.data));
      if (pre.childNodes.length > 500 || pre.textContent.length > 2 * MAX_TEXT) {
        pre.textContent = pre.textContent.slice(-MAX_TEXT);
      }
      pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener('end', () => { source.close(); pre.dataset.ended = 'true'; });
  }
  if (job.dataset.finished === 'true') return;
  const show = (id, text) => {
    const el = document.getElementById(id);
    if (el && el.textContent !== text) el.textContent = text;
  };
  const tick = async () => {
    try {
      const answer = await fetch(job.dataset.status, { cache: 'no-store' });
      if (answer.ok) {
        const s = await answer.json();
        show('state', s.state);
        show('phase', s.phase);
        show('waiting', s.waiting || '\\u2014');
        show('runs', s.runs || '\\u2014');
        if (s.finished) {
          location.reload();
          return;
        }
      }
    } catch (error) {
      // Redis or the dashboard restarting: try again at the next tick.
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
})();
`;
