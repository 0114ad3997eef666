import { describe, expect, it } from 'vitest';
import { CanonicalEncodingError, canonicalJson } from '../../src/jobs/canonical-json.js';

describe('canonicalJson (RFC 8785)', () => {
  it('is the same text whatever order the keys were written in, at every depth', () => {
    const a = { image: 'x', command: ['a'], env: { B: '2', A: '1' }, mounts: { '/z': {}, '/a': {} } };
    const b = { mounts: { '/a': {}, '/z': {} }, env: { A: '1', B: '2' }, command: ['a'], image: 'x' };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe(
      '{"command":["a"],"env":{"A":"1","B":"2"},"image":"x","mounts":{"/a":{},"/z":{}}}',
    );
  });

  it('sorts names by UTF-16 code units and keeps array order', () => {
    // 😀 (U+1F600) is the surrogates D83D DE00 in UTF-16, so it sorts before ｱ (U+FF71).
    expect(canonicalJson({ '€': 1, '\r': 2, '1': 3, '\u0080': 4, ｱ: 7, '😀': 5, ö: 6 })).toBe(
      '{"\\r":2,"1":3,"\u0080":4,"ö":6,"€":1,"😀":5,"ｱ":7}',
    );
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
  });

  it('writes unicode as itself and escapes only ", \\ and control characters', () => {
    expect(canonicalJson('é 😀 \u2028 / "q" \\ \n\t\u0001\u001f')).toBe(
      '"é 😀 \u2028 / \\"q\\" \\\\ \\n\\t\\u0001\\u001f"',
    );
  });

  it('writes numbers as ECMAScript does (RFC 8785 §3.2.2.3)', () => {
    expect(canonicalJson([0, -0, 1, 1.5, -2, 1e21, 1e-7, 123456789012345680000, 0.1 + 0.2, 2 ** 53])).toBe(
      '[0,0,1,1.5,-2,1e+21,1e-7,123456789012345680000,0.30000000000000004,9007199254740992]',
    );
  });

  it('refuses what JSON cannot hold, naming where', () => {
    expect(() => canonicalJson({ a: { b: undefined } })).toThrow(
      new CanonicalEncodingError('a.b', 'is a undefined, which JSON does not have'),
    );
    expect(() => canonicalJson({ n: [1, Number.NaN] })).toThrow('n[1] is not a finite number');
    expect(() => canonicalJson({ s: 'a\uD800b' })).toThrow('s contains a lone UTF-16 surrogate');
    expect(() => canonicalJson({ d: new Date(0) })).toThrow('d is not a plain object');
    expect(() => canonicalJson(10n)).toThrow('(top level) is a bigint');
    // Hostile nesting is an encoding error, not a stack overflow.
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(() => canonicalJson({ labels: deep })).toThrow('nests deeper than 64 levels');
  });
});
