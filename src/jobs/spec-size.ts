/**
 * Bounds on a job as a whole, checked before anything walks all of it (zod, the signature's
 * canonical JSON, JSON.parse itself): each check counts while it goes and stops at its limit,
 * so a job of millions of elements costs no more than one at the limit.
 */

/** The limits these checks apply (SPEC_LIMITS in spec-limits.ts). */
export interface SizeLimits {
  /** Bytes of the job as JSON. */
  specBytes: number;
  /** Keys and string values. */
  specStrings: number;
  /** Array items and object fields. */
  specElements: number;
  /** Objects and arrays inside each other. */
  specDepth: number;
}

const tooManyStrings = (l: SizeLimits) => `has more than ${l.specStrings} strings (keys and values)`;
const tooManyElements = (l: SizeLimits) =>
  `has more than ${l.specElements} elements (array items and object fields)`;
const tooDeep = (l: SizeLimits) => `is nested deeper than ${l.specDepth} levels`;
const tooManyBytes = (bytes: number, l: SizeLimits) =>
  `is ${bytes} bytes as JSON, more than the ${l.specBytes} a spec may be`;

const SPACE = 0x20;
const TAB = 0x09;
const NEWLINE = 0x0a;
const RETURN = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * Why job data, as the JSON text stored in Redis, is too big to parse, or null. One pass over
 * the text, stopping at the first limit, counting what `valueSizeProblem` counts: strings (keys
 * and values) by their quotes, elements by the commas between them plus the first of each
 * non-empty array or object, depth by brackets. Text that is not JSON passes: the parse says why.
 */
export function jsonTextProblem(text: string, limits: SizeLimits): string | null {
  // UTF-8 takes at least one byte per UTF-16 unit: a long text is too big without counting.
  if (text.length > limits.specBytes) return tooManyBytes(Buffer.byteLength(text), limits);
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.specBytes) return tooManyBytes(bytes, limits);
  let strings = 0;
  let elements = 0;
  let depth = 0;
  /** Just after `[` or `{`: the next token is the container's first element, unless it closes it. */
  let opened = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === SPACE || c === TAB || c === NEWLINE || c === RETURN) continue;
    if (opened) {
      opened = false;
      if (c !== CLOSE_ARRAY && c !== CLOSE_OBJECT && ++elements > limits.specElements)
        return tooManyElements(limits);
    }
    if (c === QUOTE) {
      if (++strings > limits.specStrings) return tooManyStrings(limits);
      // The closing quote is the next one not escaped by an odd run of backslashes.
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end === -1) return null;
        let backslashes = 0;
        while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
        if (backslashes % 2 === 0) break;
      }
      i = end;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limits.specDepth) return tooDeep(limits);
      opened = true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
    else if (c === COMMA && ++elements > limits.specElements) return tooManyElements(limits);
  }
  return null;
}

/**
 * Why a value (job data already parsed, or a spec a producer built) is too big, or null. Arrays
 * are measured by their length before any item is looked at, objects field by field, and the
 * walk stops at the first limit; only a value within every count is encoded to measure its bytes.
 */
export function valueSizeProblem(input: unknown, limits: SizeLimits): string | null {
  let strings = 0;
  let elements = 0;
  const stack: [unknown, number][] = [[input, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (typeof value === 'string') {
      if (++strings > limits.specStrings) return tooManyStrings(limits);
    } else if (value !== null && typeof value === 'object') {
      if (depth >= limits.specDepth) return tooDeep(limits);
      if (Array.isArray(value)) {
        elements += value.length;
        if (elements > limits.specElements) return tooManyElements(limits);
        for (const item of value) stack.push([item, depth + 1]);
      } else {
        for (const key in value) {
          if (!Object.hasOwn(value, key)) continue;
          if (++strings > limits.specStrings) return tooManyStrings(limits);
          if (++elements > limits.specElements) return tooManyElements(limits);
          stack.push([(value as Record<string, unknown>)[key], depth + 1]);
        }
      }
    }
  }
  let bytes: number;
  try {
    // Within the counts above, this costs one copy of the strings (about 10 ms for 12 MiB).
    bytes = Buffer.byteLength(JSON.stringify(input) ?? '');
  } catch (error) {
    return `cannot be encoded as JSON: ${error instanceof Error ? error.message : String(error)}`;
  }
  return bytes > limits.specBytes ? tooManyBytes(bytes, limits) : null;
}
