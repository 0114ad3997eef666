/**
 * Bind mounts as Apptainer's `--mount` reads them, so that no character of a path is syntax.
 *
 * `--bind src:dst[:opts]` is a comma-separated list that Apptainer splits on `,` and `:` (a
 * backslash escape exists, but the parser is a hand-made tokeniser): a container path such as
 * `/h1,/:/h2` adds a read-write bind of the host's `/`. `--mount` takes one mount per flag
 * (a cobra StringArray, never split) and reads it as one CSV record with Go's encoding/csv
 * (pkg/runtime/engine/apptainer/config/mount.go, Apptainer 1.4.5), so a field in double quotes,
 * with `""` for a quote, is taken literally: `,` `:` `=` `"` and line feeds included (checked on
 * the real binary). The one thing Go's CSV reader changes is `\r\n`, which it reads as `\n`
 * (a different path): mountPathProblem refuses it.
 */

function field(key: string, value: string): string {
  return `"${`${key}=${value}`.replaceAll('"', '""')}"`;
}

/** One `--mount` value: a bind of host `source` at `destination` inside, read-only or not. */
export function mountArg(source: string, destination: string, readOnly: boolean): string {
  return ['type=bind', field('source', source), field('destination', destination)]
    .concat(readOnly ? ['ro'] : [])
    .join(',');
}

/** Why `--mount` cannot carry `path` literally; null when it can. */
export function mountPathProblem(path: string): string | null {
  return path.includes('\r\n')
    ? 'contains a carriage return followed by a line feed, which Apptainer reads as a line feed alone (another path); rename it'
    : null;
}
