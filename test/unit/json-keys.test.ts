import { describe, expect, it } from 'vitest';
import { duplicateKeys } from '../helpers/json-keys.js';

describe('duplicateKeys (the log-line check)', () => {
  it('finds a key given twice at the top level, and none in a clean line', () => {
    expect(duplicateKeys('{"level":30,"pid":1,"msg":"a","pid":2}')).toEqual(['pid']);
    expect(duplicateKeys('{"level":30,"pid":1,"redisPid":2,"msg":"a, \\"pid\\": b"}')).toEqual([]);
  });

  it('tells nested objects and arrays apart from their parent', () => {
    expect(duplicateKeys('{"a":{"pid":1},"pid":2,"b":[{"x":1},{"x":2}]}')).toEqual([]);
    expect(duplicateKeys('{"a":{"x":1,"x":2},"b":[{"y":1,"y":2}]}')).toEqual(['a.x', 'b[].y']);
  });
});
