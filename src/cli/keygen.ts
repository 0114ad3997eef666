import { generateKeyPairSync } from 'node:crypto';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { keyIdProblem } from '../jobs/signing.js';
import { parse } from './options.js';
import { KEYGEN_HELP, UsageError } from './usage.js';

/** Private keys are for their owner alone (as ssh-keygen writes them). */
const PRIVATE_KEY_MODE = 0o600;
const PUBLIC_KEY_MODE = 0o644;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** `stevedore keygen --id NAME [--out DIR]`: an Ed25519 key pair for signed jobs; never overwrites. */
export async function keygenCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    id: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(KEYGEN_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`keygen takes no arguments, got ${positionals.join(' ')}`);
  const id = values.id;
  if (!id) throw new UsageError('keygen needs --id NAME: the key id, which workers see as NAME.pub');
  const problem = keyIdProblem(id);
  if (problem) throw new UsageError(`--id ${JSON.stringify(id)} ${problem}`);
  const dir = resolve(values.out ?? '.');
  const keyFile = join(dir, `${id}.key`);
  const pubFile = join(dir, `${id}.pub`);
  for (const file of [keyFile, pubFile]) {
    if (await exists(file))
      throw new UsageError(`${file} exists; keygen never overwrites a key: choose another --id or --out`);
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  await mkdir(dir, { recursive: true });
  // 'wx': created here or not at all, so a file that appeared meanwhile is not overwritten either.
  await writeFile(keyFile, privateKey, { mode: PRIVATE_KEY_MODE, flag: 'wx' });
  await writeFile(pubFile, publicKey, { mode: PUBLIC_KEY_MODE, flag: 'wx' });
  console.log(`${keyFile}\n${pubFile}`);
  return 0;
}
