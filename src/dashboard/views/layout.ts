import { html, type SafeHtml, trusted } from '../html.js';

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#fff;text-decoration:none}header strong{font-size:1.1em}
main{padding:1em 1.2em;max-width:1200px}
table{border-collapse:collapse;background:#fff;margin:.5em 0 1em}
th,td{border-bottom:1px solid #e1e4e8;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600}.Complete{color:#1a7f37}.Cancelled{color:#9a6700}.Failed{color:#cf222e}
pre{background:#0d1117;color:#e6edf3;padding:.6em;max-height:22em;overflow:auto;white-space:pre-wrap;margin:.3em 0 1em}
pre.stderr{color:#ffb3ad}
.bar{display:inline-block;height:.8em;background:#457b9d;vertical-align:middle}
.bar.failed{background:#e63946}
.note{color:#57606a;font-size:.92em}
.error{background:#ffebe9;border:1px solid #cf222e;padding:.6em}
nav.filters a{margin-right:.8em}nav.filters a.on{font-weight:700;text-decoration:none;color:#1d2329}
button{font:inherit;padding:.3em .9em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
`;

/** The page shell: header with the queue's name and the two views, then the content. */
export function page(title: string, queue: string, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${title} · Stevedore</title><style>${trusted(STYLE)}</style>
<script src="/app.js" defer></script></head>
<body><header><strong>Stevedore</strong><span>queue ${queue}</span>
<a href="/">Overview</a><a href="/jobs">Jobs</a></header>
<main>${body}</main></body></html>
`.text;
}
