import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AREAS, SETTINGS, type Setting } from '../../src/config/settings.js';
import { JOB_ENV } from '../../src/jobs/names.js';

/** docs/configuration.md's tables, row by row: the section a row is in, its variable, type and default. */
function documentedSettings(): { area: string; name: string; type: string; default: string }[] {
  const rows: { area: string; name: string; type: string; default: string }[] = [];
  let area = '';
  for (const line of readFileSync('docs/configuration.md', 'utf8').split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading?.[1]) area = heading[1];
    const row = /^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \| ([^|]*) \|/.exec(line);
    if (row?.[1] && row[2] && row[3]) {
      rows.push({ area, name: row[1], type: row[2].trim(), default: row[3].trim() });
    }
  }
  return rows;
}

/** Every TypeScript file under src/, with its text. */
function sources(): { path: string; text: string }[] {
  return readdirSync('src', { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ path: join('src', f), text: readFileSync(join('src', f), 'utf8') }));
}

const declared = SETTINGS as Record<string, Setting>;

describe('docs/configuration.md and the settings the code reads (src/config/settings.ts)', () => {
  const rows = documentedSettings();

  it('documents every setting the code declares, once, and no other', () => {
    const names = rows.map((r) => r.name);
    expect(
      names.filter((n, i) => names.indexOf(n) !== i),
      'documented twice',
    ).toEqual([]);
    expect(
      Object.keys(declared).filter((n) => !names.includes(n)),
      'read by the code, missing from the docs',
    ).toEqual([]);
    expect(
      names.filter((n) => !(n in declared)),
      'in the docs, not read by the code',
    ).toEqual([]);
  });

  it("shows each setting in its area's table with the code's type and default", () => {
    for (const row of rows) {
      const setting = declared[row.name];
      if (!setting) continue; // reported by the test above
      expect({ name: row.name, area: row.area, type: row.type, default: row.default }).toEqual({
        name: row.name,
        area: AREAS[setting.area],
        type: setting.type,
        default: setting.default,
      });
    }
  });

  it('names no STEVEDORE_ variable in its prose that the code does not read', () => {
    const text = readFileSync('docs/configuration.md', 'utf8');
    const named = new Set(text.match(/\bSTEVEDORE_[A-Z0-9_]+\b/g));
    expect([...named].filter((n) => !(n in declared))).toEqual([]);
  });

  it('declares only settings something in src/ reads, and every STEVEDORE_ name src/ mentions', () => {
    const code = sources().filter((s) => s.path !== join('src', 'config', 'settings.ts'));
    const unread = Object.keys(declared).filter((n) => !code.some((s) => s.text.includes(`'${n}'`)));
    expect(unread, 'declared, but no code asks for it').toEqual([]);
    const mentioned = new Set(code.flatMap((s) => s.text.match(/\bSTEVEDORE_[A-Z0-9_]+\b/g) ?? []));
    // The job's own variables (names.ts JOB_ENV) are what a job reads, not settings of the worker.
    const jobEnv: readonly string[] = Object.values(JOB_ENV);
    expect(
      [...mentioned].filter((n) => !(n in declared) && !jobEnv.includes(n)),
      'named in src/ but not a declared setting',
    ).toEqual([]);
  });
});

describe('the one reader of the environment', () => {
  it('is src/config/env.ts: no other file in src/ touches process.env', () => {
    const readers = sources()
      .filter((s) => /\bprocess\.env\b/.test(s.text))
      .map((s) => s.path);
    expect(readers).toEqual([join('src', 'config', 'env.ts')]);
  });
});
