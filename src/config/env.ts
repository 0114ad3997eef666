/**
 * The one reader of process.env. Everything else takes an `Env` as an argument: the CLI asks
 * for `processEnv()` once per command and passes it to the loaders of this folder, which hand
 * their values on as plain options (a unit test fails on any other `process.env` in src/).
 */

/** Environment variables as read: a name may be absent; overrides (CLI flags) have the same shape. */
export type Env = Readonly<Partial<Record<string, string>>>;

/** This process's environment. */
export function processEnv(): Env {
  return process.env;
}
