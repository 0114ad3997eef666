import { describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../src/config/client.js';
import { loadConfig } from '../../src/config/worker.js';

describe('signing settings', () => {
  it('STEVEDORE_TRUSTED_KEYS names the worker trusted keys directory; unset, no signature is required', () => {
    expect(loadConfig({ STEVEDORE_TRUSTED_KEYS: '/etc/stevedore/keys' }).trustedKeysDir).toBe(
      '/etc/stevedore/keys',
    );
    expect(loadConfig({}, { STEVEDORE_TRUSTED_KEYS: '/flag' }).trustedKeysDir).toBe('/flag');
    expect(loadConfig({}).trustedKeysDir).toBeUndefined();
  });

  it('STEVEDORE_SIGNING_KEY names the producer key file, --signing-key wins', () => {
    expect(loadClientConfig({ STEVEDORE_SIGNING_KEY: '/k/a.key' }).signingKeyFile).toBe('/k/a.key');
    expect(
      loadClientConfig({ STEVEDORE_SIGNING_KEY: '/k/a.key' }, { STEVEDORE_SIGNING_KEY: '/k/b.key' })
        .signingKeyFile,
    ).toBe('/k/b.key');
    expect(loadClientConfig({}).signingKeyFile).toBeUndefined();
  });
});
