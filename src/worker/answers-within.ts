import { coerceError } from '../jobs/errors.js';

/** Null when `check` settles within `ms`, else what went wrong (its error, or that it did not answer). */
export async function answersWithin(check: () => Promise<unknown>, ms: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([check(), late]);
    return null;
  } catch (error) {
    return coerceError(error).message;
  } finally {
    clearTimeout(timer);
  }
}
