/**
 * The canonical JSON encoding of RFC 8785 (JCS), which signed jobs sign: one text per JSON value,
 * so a producer in any language that has a JCS library gets the same bytes.
 * https://www.rfc-editor.org/rfc/rfc8785
 */

/** A value the canonical encoding cannot take (not JSON, or a string that is not valid Unicode). */
export class CanonicalEncodingError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path || '(top level)'} ${problem}`);
    this.name = 'CanonicalEncodingError';
  }
}

// A UTF-16 surrogate not paired with its other half: no Unicode text, so RFC 8785 §3.2.2.2 refuses it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeString(text: string, path: string): string {
  if (LONE_SURROGATE.test(text)) throw new CanonicalEncodingError(path, 'contains a lone UTF-16 surrogate');
  // ECMAScript's JSON.stringify escapes exactly what RFC 8785 §3.2.2.2 asks: ", \, and U+0000–U+001F
  // (\b \t \n \f \r by name, the rest as \u00xx in lower-case hex); everything else stays as it is.
  return JSON.stringify(text);
}

function encodeNumber(value: number, path: string): string {
  if (!Number.isFinite(value)) throw new CanonicalEncodingError(path, 'is not a finite number');
  // RFC 8785 §3.2.2.3 is ECMAScript's Number-to-String: 1, 1.5, 1e+21, 1e-7, and -0 as 0.
  return JSON.stringify(value);
}

/** Deeper than any spec nests (4 levels): hostile job data must not exhaust the stack of a recursive encoder. */
const MAX_DEPTH = 64;

function encode(value: unknown, path: string, depth = 0): string {
  if (value === null) return 'null';
  if (depth > MAX_DEPTH) throw new CanonicalEncodingError(path, `nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return encodeNumber(value, path);
    case 'string':
      return encodeString(value, path);
    case 'object':
      break;
    default:
      throw new CanonicalEncodingError(path, `is a ${typeof value}, which JSON does not have`);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item, i) => encode(item, `${path}[${i}]`, depth + 1)).join(',')}]`;
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CanonicalEncodingError(path, 'is not a plain object (encode it as JSON first)');
  }
  // RFC 8785 §3.2.3: members sorted by their names' UTF-16 code units, which is what sort() compares.
  const names = Object.keys(value).sort();
  const members = names.map((name) => {
    const inner = path ? `${path}.${name}` : name;
    return `${encodeString(name, inner)}:${encode((value as Record<string, unknown>)[name], inner, depth + 1)}`;
  });
  return `{${members.join(',')}}`;
}

/** The RFC 8785 canonical JSON text of a JSON value; throws CanonicalEncodingError naming the bad part. */
export function canonicalJson(value: unknown): string {
  return encode(value, '');
}
