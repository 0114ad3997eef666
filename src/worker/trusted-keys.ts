import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.js';
import { coerceError, ValidationError } from '../jobs/errors.js';
import { keyIdProblem, toPublicKey } from '../jobs/signing.js';

const PUBLIC_KEY_SUFFIX = '.pub';

/** What the directory held when last read: names with size, mtime and inode, so any change shows. */
async function fingerprint(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(PUBLIC_KEY_SUFFIX)).sort();
  const parts = await Promise.all(
    names.map(async (name) => {
      const s = await stat(join(dir, name)).catch(() => null);
      return s ? `${name}:${s.size}:${s.mtimeMs}:${s.ino}` : `${name}:gone`;
    }),
  );
  return parts.join('\n');
}

/** Reads every `<id>.pub`; a bad file is reported through `onBad` and left out. */
async function readKeys(
  dir: string,
  onBad: (file: string, problem: string) => void,
): Promise<Map<string, KeyObject>> {
  const keys = new Map<string, KeyObject>();
  for (const name of (await readdir(dir)).filter((n) => n.endsWith(PUBLIC_KEY_SUFFIX)).sort()) {
    const file = join(dir, name);
    const id = name.slice(0, -PUBLIC_KEY_SUFFIX.length);
    const idProblem = keyIdProblem(id);
    if (idProblem) {
      onBad(file, `its base name ${JSON.stringify(id)} is the key id, which ${idProblem}`);
      continue;
    }
    try {
      keys.set(id, toPublicKey(await readFile(file, 'utf8')));
    } catch (error) {
      const problem = error instanceof ValidationError ? error.message : coerceError(error).message;
      onBad(file, problem);
    }
  }
  return keys;
}

/**
 * The worker's trusted public keys: the `*.pub` files of one directory, key id = base name.
 * Read at start (a bad file stops the worker, naming it) and read again whenever the directory
 * has changed by the time a job is checked, so rotation needs no restart and a job is never
 * checked against keys older than the directory.
 */
export class TrustedKeys {
  private reading: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    private keys: Map<string, KeyObject>,
    private seen: string,
    private readonly logger: Logger,
  ) {}

  static async load(dir: string, logger: Logger): Promise<TrustedKeys> {
    const problems: string[] = [];
    let keys: Map<string, KeyObject>;
    let seen: string;
    try {
      seen = await fingerprint(dir);
      keys = await readKeys(dir, (file, problem) => problems.push(`${file}: ${problem}`));
    } catch (error) {
      throw new ConfigError(
        `STEVEDORE_TRUSTED_KEYS=${JSON.stringify(dir)} cannot be read (${coerceError(error).message}): it must be a directory of <key id>.pub files`,
      );
    }
    if (problems.length > 0)
      throw new ConfigError(
        `STEVEDORE_TRUSTED_KEYS: bad key file ${problems.join('; ')}; fix or remove it (keys come from \`stevedore keygen\`)`,
      );
    const trusted = new TrustedKeys(dir, keys, seen, logger);
    if (keys.size === 0)
      logger.warn({ trustedKeys: dir }, 'no *.pub files among the trusted keys: every job will be refused');
    else logger.info({ trustedKeys: dir, keyIds: trusted.ids() }, 'trusted keys read');
    return trusted;
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }

  /** The keys as the directory holds them now (read again if it changed). */
  async current(): Promise<ReadonlyMap<string, KeyObject>> {
    this.reading ??= this.refresh().finally(() => {
      this.reading = undefined;
    });
    await this.reading;
    return this.keys;
  }

  private async refresh(): Promise<void> {
    let now: string;
    try {
      now = await fingerprint(this.dir);
    } catch (error) {
      this.trustNothing(error);
      return;
    }
    if (now === this.seen) return;
    const kept = new Map<string, KeyObject>();
    const keys = await readKeys(this.dir, (file, problem) => {
      // A file caught half-written keeps the key it replaces until it reads well.
      const id = basename(file, PUBLIC_KEY_SUFFIX);
      const old = this.keys.get(id);
      if (old) kept.set(id, old);
      this.logger.warn(
        { trustedKeys: this.dir, file, keptOld: old !== undefined },
        `bad trusted key file: ${problem}`,
      );
    }).catch((error: unknown) => {
      this.trustNothing(error);
      return undefined;
    });
    if (!keys) return;
    for (const [id, key] of kept) keys.set(id, key);
    this.keys = keys;
    this.seen = now;
    this.logger.info({ trustedKeys: this.dir, keyIds: this.ids() }, 'trusted keys re-read');
  }

  /** Gone or unreadable: trusting nothing is the safe side; every job is refused until it is back. */
  private trustNothing(error: unknown): void {
    if (this.keys.size > 0)
      this.logger.warn(
        { trustedKeys: this.dir, err: error },
        'trusted keys directory cannot be read: no key is trusted until it can',
      );
    this.keys = new Map();
    this.seen = '';
  }
}
