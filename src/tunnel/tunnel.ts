// An SSH tunnel from a loopback port on this dyno to one node of the database cluster.
//
// The app's database pool connects to 127.0.0.1:<port>; each accepted socket is carried to
// the chosen node through `direct-tcpip` on one SSH connection. The node is the dyno number
// modulo the number of nodes, so dynos spread over the cluster; a node that refuses is
// skipped for the next. A dropped SSH connection is re-established with bounded exponential
// backoff: meanwhile the forwarded sockets are closed and new ones wait briefly, then are
// refused, so the pool's own reconnect loop brings its connections back through the new
// SSH connection. After too many failed attempts the tunnel gives up ('failed'), and the
// process exits so that the platform restarts the dyno.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import ssh2 from 'ssh2';
import type { Client, ClientChannel } from 'ssh2';
import type { Logger } from 'pino';
import type { TunnelConfig } from './config.js';

export type TunnelState = 'connecting' | 'up' | 'down' | 'failed' | 'closed';

export interface TunnelOptions {
  /** first retry delay; it doubles per failed attempt up to maxDelayMs */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** consecutive failed attempts (at start or after a drop) before giving up */
  maxAttempts?: number;
  /** how long a local connection made while SSH is down waits for it before being refused */
  holdMs?: number;
  /** how long a node gets to accept a forwarded connection before the next is tried */
  openTimeoutMs?: number;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** in [0, 1): picks the node when there is no dyno number, and jitters the backoff */
  random?: () => number;
}

const DEFAULTS: Required<TunnelOptions> = {
  initialDelayMs: 250,
  maxDelayMs: 15_000,
  maxAttempts: 12, // about two minutes of trying before the platform gets to restart us
  holdMs: 5_000,
  openTimeoutMs: 10_000,
  readyTimeoutMs: 15_000,
  keepaliveIntervalMs: 10_000,
  keepaliveCountMax: 3,
  random: Math.random,
};

export type TunnelLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

interface TunnelEvents {
  state: [state: TunnelState];
  /** the database node new connections go to changed (after a refusal) */
  node: [host: string];
  /** the tunnel gave up; the process should exit non-zero */
  failed: [error: Error];
  /** no forwarded connection is open any more */
  idle: [];
}

/** Refusals that retrying cannot fix: a wrong host key or rejected credentials. */
export class TunnelFatalError extends Error {
  override name = 'TunnelFatalError';
}

/** The fingerprint `ssh-keygen -lf` prints for a public key blob: SHA256:<base64, unpadded>. */
export function sshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

export class SshTunnel extends EventEmitter<TunnelEvents> {
  readonly host = '127.0.0.1';
  /** the loopback port the database driver connects to (known once started) */
  port = 0;
  private readonly opts: Required<TunnelOptions>;
  private readonly preferredNode: number;
  private nodeIndex: number;
  private current: TunnelState = 'connecting';
  private client: Client | undefined;
  private readonly server: net.Server;
  private readonly forwarded = new Set<net.Socket>();
  private readonly held = new Map<net.Socket, NodeJS.Timeout>();
  private wakeSleeper: (() => void) | undefined;
  private closing = false;
  private warnedInsecure = false;

  constructor(
    private readonly config: TunnelConfig,
    private readonly log: TunnelLogger,
    options: TunnelOptions = {},
  ) {
    super();
    this.opts = { ...DEFAULTS, ...options };
    const nodes = config.remoteHosts.length;
    const dyno = config.dyno ?? Math.floor(this.opts.random() * nodes);
    this.preferredNode = dyno % nodes;
    this.nodeIndex = this.preferredNode;
    this.server = net.createServer((socket) => {
      socket.on('error', () => socket.destroy());
      this.accept(socket);
    });
  }

  get state(): TunnelState {
    return this.current;
  }

  /** the database node new connections are sent to */
  get node(): string {
    return this.config.remoteHosts[this.nodeIndex];
  }

  get activeConnections(): number {
    return this.forwarded.size;
  }

  /** Connects (retrying transient failures), then listens on the loopback port. */
  async start(): Promise<void> {
    this.log.info(
      { ssh: `${this.config.sshUser}@${this.config.sshHost}:${this.config.sshPort}`, node: this.node, nodes: this.config.remoteHosts.length },
      'opening SSH tunnel',
    );
    try {
      this.adopt(await this.connectWithRetry());
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen({ host: this.host, port: this.config.localPort }, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await this.close();
      throw err;
    }
    const address = this.server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : this.config.localPort;
    this.setState('up');
    this.log.info({ port: this.port, node: this.node }, 'tunnel ready');
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wakeSleeper?.();
    for (const [socket, timer] of this.held) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.held.clear();
    for (const socket of this.forwarded) socket.destroy();
    this.client?.end();
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    if (this.current !== 'failed') this.setState('closed');
  }

  private setState(state: TunnelState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit('state', state);
  }

  /** Makes a connected client the current one and watches it for a drop. */
  private adopt(client: Client): void {
    if (this.closing) {
      client.end(); // closed while this connection was being made
      throw new Error('tunnel closed');
    }
    this.client = client;
    this.nodeIndex = this.preferredNode; // each session starts from this dyno's own node
    client.on('error', (err) => this.log.warn({ err: err.message }, 'SSH connection error'));
    client.once('close', () => void this.onDrop(client));
    if (this.server.listening) {
      this.setState('up');
      this.log.info({ node: this.node }, 'SSH connection re-established');
      for (const [socket, timer] of this.held) {
        clearTimeout(timer);
        this.held.delete(socket);
        this.forward(socket);
      }
    }
  }

  private async onDrop(client: Client): Promise<void> {
    if (this.client !== client || this.closing) return;
    this.client = undefined;
    this.setState('down');
    this.log.warn({ forwarded: this.forwarded.size }, 'SSH connection lost; reconnecting');
    // The channels died with the connection; closing our ends tells the pool at once.
    for (const socket of this.forwarded) socket.destroy();
    try {
      this.adopt(await this.connectWithRetry());
    } catch (err) {
      if (this.closing) return;
      const error = err instanceof Error ? err : new Error(String(err));
      this.log.error({ err: error.message }, 'SSH tunnel failed; giving up');
      this.setState('failed');
      await this.close();
      this.emit('failed', error);
    }
  }

  private async connectWithRetry(): Promise<Client> {
    const { maxAttempts, initialDelayMs, maxDelayMs } = this.opts;
    let lastError: Error = new Error('not attempted');
    for (let attempt = 1; attempt <= maxAttempts && !this.closing; attempt++) {
      try {
        return await this.connectOnce();
      } catch (err) {
        if (err instanceof TunnelFatalError) throw err;
        lastError = err instanceof Error ? err : new Error(String(err));
        if (attempt === maxAttempts) break;
        const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
        const delay = Math.round(ceiling / 2 + (this.opts.random() * ceiling) / 2);
        this.log.warn({ attempt, of: maxAttempts, retryInMs: delay, err: lastError.message }, 'SSH connection failed');
        await this.sleep(delay);
      }
    }
    if (this.closing) throw new Error('tunnel closed');
    throw new Error(`SSH connection failed ${maxAttempts} times; last error: ${lastError.message}`);
  }

  private connectOnce(): Promise<Client> {
    const { config } = this;
    return new Promise((resolve, reject) => {
      const client = new ssh2.Client();
      let rejectedKey: string | undefined;
      const fail = (err: Error & { level?: string }) => {
        client.removeAllListeners('ready');
        client.end();
        if (rejectedKey !== undefined) {
          reject(
            new TunnelFatalError(
              `the SSH server's host key ${rejectedKey} is not the configured TUNNEL_SSH_HOST_FINGERPRINT; refusing to connect`,
            ),
          );
        } else if (err.level === 'client-authentication') {
          reject(new TunnelFatalError(`the SSH server refused the key for user ${config.sshUser}`));
        } else {
          reject(err);
        }
      };
      client.once('error', fail);
      client.once('close', () => fail(new Error('SSH connection closed during handshake')));
      client.once('ready', () => {
        client.removeListener('error', fail);
        client.removeAllListeners('close');
        resolve(client);
      });
      client.connect({
        host: config.sshHost,
        port: config.sshPort,
        username: config.sshUser,
        privateKey: config.sshKey,
        passphrase: config.sshKeyPassphrase,
        readyTimeout: this.opts.readyTimeoutMs,
        keepaliveInterval: this.opts.keepaliveIntervalMs,
        keepaliveCountMax: this.opts.keepaliveCountMax,
        hostVerifier: (key: Buffer): boolean => {
          const presented = sshFingerprint(key);
          if (config.hostFingerprints.length === 0) {
            if (!this.warnedInsecure) {
              this.warnedInsecure = true;
              this.log.warn(
                { presented },
                'TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK is set: the SSH server is NOT verified, anyone on the path can ' +
                  'impersonate it and read the database traffic. Pin this fingerprint in TUNNEL_SSH_HOST_FINGERPRINT',
              );
            }
            return true;
          }
          if (config.hostFingerprints.includes(presented)) return true;
          rejectedKey = presented;
          return false;
        },
      });
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleeper = done;
    });
  }

  private accept(socket: net.Socket): void {
    if (this.client !== undefined && this.current === 'up') this.forward(socket);
    else this.hold(socket);
  }

  // SSH is down: give the reconnect a moment before refusing, so a quick blip costs a
  // short wait rather than a failed query.
  private hold(socket: net.Socket): void {
    this.held.set(
      socket,
      setTimeout(() => {
        this.held.delete(socket);
        socket.destroy();
      }, this.opts.holdMs),
    );
    socket.once('close', () => {
      clearTimeout(this.held.get(socket));
      this.held.delete(socket);
    });
  }

  /** Carries a local socket to a database node, trying each node once from the current one. */
  private forward(socket: net.Socket): void {
    const client = this.client;
    const nodes = this.config.remoteHosts;
    const start = this.nodeIndex;
    const tryNode = (tried: number): void => {
      if (socket.destroyed || this.closing) return;
      if (client === undefined || client !== this.client) {
        this.accept(socket); // the session dropped meanwhile: use or wait for the next one
        return;
      }
      const index = (start + tried) % nodes.length;
      const host = nodes[index];
      let settled = false;
      const timer = setTimeout(() => onOpen(new Error(`no answer within ${this.opts.openTimeoutMs} ms`)), this.opts.openTimeoutMs);
      const onOpen = (err: Error | undefined, channel?: ClientChannel): void => {
        if (settled) {
          channel?.close(); // a late answer after the timeout
          return;
        }
        settled = true;
        clearTimeout(timer);
        if (err !== undefined || channel === undefined) {
          if (client !== this.client) {
            tryNode(tried); // not the node's fault: the SSH session went away
            return;
          }
          this.log.warn({ node: host, err: err?.message }, 'database node refused the connection');
          if (tried + 1 < nodes.length) tryNode(tried + 1);
          else {
            this.log.error({ nodes }, 'no database node accepted the connection');
            socket.destroy();
          }
          return;
        }
        if (socket.destroyed) {
          channel.close();
          return;
        }
        if (index !== this.nodeIndex) {
          this.nodeIndex = index;
          this.log.warn({ node: host }, 'database connections now go to another node');
          this.emit('node', host);
        }
        this.pipe(socket, channel);
      };
      try {
        client.forwardOut('127.0.0.1', socket.remotePort ?? 0, host, this.config.remotePort, (e, ch) => onOpen(e ?? undefined, ch));
      } catch {
        // "Not connected": the session is going away and its 'close' will follow.
        settled = true;
        clearTimeout(timer);
        this.hold(socket);
      }
    };
    tryNode(0);
  }

  private pipe(socket: net.Socket, channel: ClientChannel): void {
    this.forwarded.add(socket);
    const end = () => {
      socket.destroy();
      channel.destroy();
      if (this.forwarded.delete(socket) && this.forwarded.size === 0) this.emit('idle');
    };
    socket.once('close', end);
    channel.once('close', end);
    channel.on('error', end);
    socket.pipe(channel).pipe(socket);
  }
}

/** Opens the tunnel; resolves once it accepts connections on 127.0.0.1:<port>. */
export async function startTunnel(config: TunnelConfig, logger: TunnelLogger, options?: TunnelOptions): Promise<SshTunnel> {
  const tunnel = new SshTunnel(config, logger, options);
  await tunnel.start();
  return tunnel;
}
