import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import type { TestCerts } from './test-certs.js';

/** A TLS record no session can decrypt: application data (23), TLS 1.2 framing, 5 bytes of noise. */
const BAD_RECORD = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
/** Between the bad record and the reset: the client has read the record and reports it first. */
const RESET_AFTER_MS = 20;

/**
 * A server on loopback that breaks every TLS session the way a failing middlebox or TLS server
 * does: it completes the handshake (its certificate signed by `certs.ca`), answers the client's
 * first bytes with a record that cannot be decrypted, then resets the connection. The client's
 * socket thus fails twice (OpenSSL's error, then `read ECONNRESET`), every time: the case that
 * killed workers whose socket had only ioredis's once() listeners.
 */
export class TlsResetServer {
  private constructor(
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    readonly port: number,
  ) {}

  static async start(certs: TestCerts): Promise<TlsResetServer> {
    const secureContext = createSecureContext({
      cert: await readFile(certs.serverCert),
      key: await readFile(certs.serverKey),
    });
    const sockets = new Set<Socket>();
    const server = createServer((raw) => {
      sockets.add(raw);
      raw.on('close', () => sockets.delete(raw));
      raw.on('error', () => undefined); // the reset is ours
      const tls = new TLSSocket(raw, { isServer: true, secureContext });
      tls.on('error', () => undefined);
      tls.once('data', () => {
        raw.write(BAD_RECORD);
        setTimeout(() => raw.resetAndDestroy(), RESET_AFTER_MS);
      });
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    return new TlsResetServer(server, sockets, typeof address === 'object' && address ? address.port : 0);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}
