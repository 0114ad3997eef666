import { isEngineImageId, parseImageRef, policyForms } from '../jobs/image-ref.js';
import { matchesAny } from './patterns.js';
import type { Policy } from './policy.js';

const noMatch = (image: string, patterns: readonly string[]): string =>
  `${image} matches none of the allowed images (${patterns.join(', ') || 'none'})`;

/**
 * Why the policy does not allow `image`, or null. An engine id (`sha256:<id>`, a bare hex
 * prefix) needs `allowImageIds` and then a pattern that matches it as written. A name is matched
 * in the forms policyForms gives: a reference with a digest only by patterns that allow the digest.
 */
export function imageProblem(image: string, policy: Pick<Policy, 'images' | 'allowImageIds'>): string | null {
  if (isEngineImageId(image)) {
    if (!policy.allowImageIds)
      return `${image} would be read by the engine as the id of an image it holds, which this worker's policy does not allow (allowImageIds): name the image by repository, with a tag or a digest`;
    return matchesAny(policy.images, [image]) ? null : noMatch(image, policy.images);
  }
  const ref = parseImageRef(image);
  // A malformed reference is matched as written; the image loader refuses it (reason `image`).
  const forms = typeof ref === 'string' ? [image] : policyForms(image, ref);
  return matchesAny(policy.images, forms) ? null : noMatch(image, policy.images);
}
