interface Container {
  array: boolean;
  path: string;
  keys: Set<string>;
  /** In an object: the next string is a key. */
  expectKey: boolean;
  /** In an object: the key whose value is being read. */
  key: string;
}

/**
 * Keys that occur more than once in one object of a JSON text, as `path.key`. JSON.parse keeps
 * the last of duplicate keys silently, so a log line has to be read as text to find them.
 */
export function duplicateKeys(text: string): string[] {
  const duplicates: string[] = [];
  const stack: Container[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack.at(-1);
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (top && !top.array && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) duplicates.push(`${top.path}${key}`);
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === '{' || c === '[') {
      const path = !top ? '' : top.array ? `${top.path.slice(0, -1)}[].` : `${top.path}${top.key}.`;
      stack.push({ array: c === '[', path, keys: new Set(), expectKey: c === '{', key: '' });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',' && top && !top.array) {
      top.expectKey = true;
    }
  }
  return duplicates;
}
