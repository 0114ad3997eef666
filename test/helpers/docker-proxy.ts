import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A unix-socket proxy in front of the Docker engine that can be frozen: while frozen, every
 * connection is accepted and then ignored, as a hung daemon would. Lets the watchdog test
 * make the real engine look dead without touching it. It can also cut chosen connections, as
 * a proxy closing long-lived requests would. It listens on a unix socket, or with `tcp` on a
 * loopback port (an engine reached over plain HTTP).
 */
export class FreezableDockerProxy {
  frozen = false;
  private readonly sockets = new Set<Socket>();
  /** Each client connection with the first line of the latest request it sent (connections are reused). */
  private readonly requests = new Map<Socket, string>();
  /** Every request line seen, in order. */
  readonly requestLines: string[] = [];
  /** The loopback port, when listening on TCP. */
  port = 0;
  /** Requests whose answer is held back: all of it, or only its end (the connection stays open). */
  private readonly holds: { line: RegExp; what: 'all' | 'end' }[] = [];
  /** Client connections whose end the engine sent while it was held. */
  private readonly endsHeld = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
    private readonly dir: string,
  ) {}

  static async start(
    target = '/var/run/docker.sock',
    options: { tcp?: boolean } = {},
  ): Promise<FreezableDockerProxy> {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-proxy-'));
    const socketPath = join(dir, 'docker.sock');
    let proxy: FreezableDockerProxy | undefined;
    // Half-open both ways: a client ending its side (stdin done) still reads the engine's answer.
    const server = createServer({ allowHalfOpen: true }, (client) => {
      proxy?.sockets.add(client);
      client.on('close', () => {
        proxy?.sockets.delete(client);
        proxy?.endsHeld.delete(client);
        proxy?.requests.delete(client);
      });
      if (proxy?.frozen) return;
      const upstream = connect({ path: target, allowHalfOpen: true });
      proxy?.sockets.add(upstream);
      // Forward by hand so that freezing also silences connections that are already open
      // (dockerode keeps connections alive and reuses them).
      client.on('data', (chunk: Buffer) => {
        const line = chunk.toString('latin1', 0, 200).split('\r\n')[0] ?? '';
        if (/^[A-Z]+ \//.test(line)) {
          proxy?.requests.set(client, line);
          proxy?.requestLines.push(line);
        }
        if (!proxy?.frozen) upstream.write(chunk);
      });
      upstream.on('data', (chunk) => proxy?.frozen || proxy?.held(client, 'all') || client.write(chunk));
      client.on('end', () => upstream.end());
      upstream.on('end', () => {
        if (!proxy?.held(client)) client.end();
        else proxy.endsHeld.add(client);
      });
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
    });
    proxy = new FreezableDockerProxy(server, socketPath, dir);
    if (options.tcp) {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      proxy.port = (server.address() as AddressInfo).port;
    } else {
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    }
    return proxy;
  }

  /**
   * From now on, requests whose line matches get no answer (`all`), or their answer without its
   * end (`end`: the engine finished, the client is never told), as a hung stream would.
   */
  hold(requestLine: RegExp, what: 'all' | 'end'): void {
    this.holds.push({ line: requestLine, what });
  }

  /**
   * Drops the holds made with this very pattern; the ends they kept back reach their clients now
   * (answers an `all` hold dropped stay dropped).
   */
  release(requestLine: RegExp): void {
    for (let i = this.holds.length - 1; i >= 0; i -= 1) {
      if (this.holds[i]?.line === requestLine) this.holds.splice(i, 1);
    }
    for (const client of this.endsHeld) {
      if (this.held(client)) continue;
      this.endsHeld.delete(client);
      client.end();
    }
  }

  /** Whether what the engine sends on this client's connection is held back (any hold, or one of `what`). */
  private held(client: Socket, what?: 'all' | 'end'): boolean {
    const line = this.requests.get(client) ?? '';
    return this.holds.some((h) => (what === undefined || h.what === what) && h.line.test(line));
  }

  /** Cuts every open connection whose first request line matches; returns how many. */
  cut(requestLine: RegExp): number {
    let cut = 0;
    for (const [client, line] of this.requests) {
      if (!requestLine.test(line)) continue;
      client.destroy();
      cut += 1;
    }
    return cut;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }
}
