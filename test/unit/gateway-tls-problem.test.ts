import { describe, expect, it } from 'vitest';
import { tlsProblem } from '../../src/jobs/gateway/tls-problem.js';

const failure = (code: string, message: string) => Object.assign(new Error(message), { code });

describe("a gateway's TLS failure, as the client says it", () => {
  it('names STEVEDORE_GATEWAY_TLS_CA and its flag for a certificate this client cannot trust', () => {
    for (const code of [
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
    ]) {
      const said = tlsProblem(failure(code, 'unable to verify the first certificate'), '10.0.0.7');
      expect(said).toMatch(
        /^its TLS certificate is not trusted here \(unable to verify the first certificate\)/,
      );
      expect(said).toContain('STEVEDORE_GATEWAY_TLS_CA=FILE');
      expect(said).toContain('--gateway-tls-ca FILE');
    }
  });

  it('names the host and the worker settings for a certificate that does not name the advertised host', () => {
    const said = tlsProblem(
      failure('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"),
      '127.0.0.1',
    );
    expect(said).toMatch(/^its TLS certificate does not name 127\.0\.0\.1, the address it advertises/);
    expect(said).toContain('STEVEDORE_GATEWAY_ADVERTISE');
    expect(said).toContain('STEVEDORE_GATEWAY_TLS_CERT');
  });

  it('says an expired certificate is to be renewed', () => {
    expect(tlsProblem(failure('CERT_HAS_EXPIRED', 'certificate has expired'), 'w')).toMatch(
      /^its TLS certificate has expired .*renew the worker's certificate \(STEVEDORE_GATEWAY_TLS_CERT\)/,
    );
  });

  it('leaves any other error to the connection: refused, reset, not TLS at all', () => {
    expect(tlsProblem(failure('ECONNREFUSED', 'connect ECONNREFUSED'), 'w')).toBeNull();
    expect(tlsProblem(failure('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'), 'w')).toBeNull();
    expect(tlsProblem(new Error('socket hang up'), 'w')).toBeNull();
  });
});
