/**
 * Why a TLS handshake with a worker's gateway failed, in words that say what to change, for the
 * certificate checks a client can fail (OpenSSL's verify codes, Node's host name check); null for
 * any other error, which is the connection's own (refused, reset, timed out).
 */

/** The chain does not lead to a CA this client trusts: it was not given the one that signed it. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
]);
const OUT_OF_DATE: Record<string, string> = {
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet',
};
/** Node's check that the certificate names the host dialled (tls.checkServerIdentity). */
const WRONG_NAME = 'ERR_TLS_CERT_ALTNAME_INVALID';

export function tlsProblem(error: Error & { code?: unknown }, host: string): string | null {
  const code = typeof error.code === 'string' ? error.code : '';
  if (UNTRUSTED.has(code)) {
    return `its TLS certificate is not trusted here (${error.message}): give the CA that signed the workers' gateway certificates, with STEVEDORE_GATEWAY_TLS_CA=FILE (the CLI's --gateway-tls-ca FILE; in code, the client option gatewayTls: { ca })`;
  }
  if (code === WRONG_NAME) {
    return `its TLS certificate does not name ${host}, the address it advertises (${error.message}): the worker's certificate (STEVEDORE_GATEWAY_TLS_CERT) must name the address clients dial (STEVEDORE_GATEWAY_ADVERTISE, else its STEVEDORE_GATEWAY host); give the worker a certificate for ${host}, or advertise a name its certificate holds`;
  }
  const outOfDate = OUT_OF_DATE[code];
  if (outOfDate) {
    return `its TLS certificate ${outOfDate} (${error.message}): renew the worker's certificate (STEVEDORE_GATEWAY_TLS_CERT), and check that both hosts' clocks are right`;
  }
  return null;
}
