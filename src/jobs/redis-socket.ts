import type { RedisOptions } from 'ioredis';
import { SentinelConnector, StandaloneConnector } from 'ioredis/built/connectors/index.js';

/** What `RedisOptions.Connector` takes; ioredis constructs it with the client's whole options. */
type ConnectorClass = NonNullable<RedisOptions['Connector']>;
type Emitter = Parameters<StandaloneConnector['connect']>[0];
type Socket = Awaited<ReturnType<StandaloneConnector['connect']>>;
// ioredis passes each its own options (typed narrower than ConnectorClass's `unknown`).
const STANDALONE = StandaloneConnector as unknown as ConnectorClass;
const SENTINEL = SentinelConnector as unknown as ConnectorClass;

/**
 * ioredis listens for its socket's 'error' with `once()` (twice: the connector and the client).
 * A TLS socket can fail twice: an OpenSSL error after the handshake (a bad record, an alert) is
 * emitted without destroying the socket, and the peer's reset then comes as `read ECONNRESET`
 * (or a write as `EPROTO`). With both listeners spent, that second error is an unhandled 'error'
 * event and kills the process (ioredis#962, never merged). Every socket our connections open gets
 * a lasting listener here, so the second error is logged instead.
 */
function listened(Base: ConnectorClass, onSocketError: (error: Error) => void): ConnectorClass {
  // One subclass per base, so a Sentinel setup keeps its connector.
  return class extends Base {
    override async connect(emitter: Emitter): Promise<Socket> {
      // The base's own connect (declared abstract on AbstractConnector, so not via `super`).
      const socket = await Base.prototype.connect.call(this, emitter);
      socket.on('error', onSocketError);
      return socket;
    }
  };
}

/**
 * `options` with a connector whose sockets always have an error listener. Kept by `duplicate()`
 * (it copies the options), so BullMQ's own connections made from ours have it too.
 */
export function withSocketErrors(options: RedisOptions, onSocketError: (error: Error) => void): RedisOptions {
  const base = options.sentinels ? SENTINEL : STANDALONE;
  return { ...options, Connector: listened(base, onSocketError) };
}
