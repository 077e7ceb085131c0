// A chat client for load and chaos runs: a real Primus client (engine.io, upgraded to
// WebSocket) speaking protocol 2. It can fail over to another app process and resume from
// the last message it saw, and it resends what was not acknowledged, with the same id, so
// that a message is stored once whatever happens to the process it was sent through.
import Primus from 'primus';
import type { WireMessage } from '../../src/chat/protocol.js';

type Frame = { type: string } & Record<string, unknown>;

const Socket = Primus.createSocket({ transformer: 'engine.io', parser: 'JSON', pathname: '/primus', pingInterval: false });

export interface LoadClientOptions {
  /** app processes to try, in turn; the first is used first */
  urls: string[];
  room: string;
  /** every delivered message (history included), with the time it arrived (performance.now()) */
  onMessage?: (m: WireMessage, at: number, live: boolean) => void;
  /** open a new connection (to the next url) when this one ends; otherwise stay closed */
  failover?: boolean;
}

export class LoadClient {
  private sock: Primus.Client | undefined;
  private urlIndex = 0;
  private closed = false;
  /** the last message seen, to resume from */
  lastId: string | undefined;
  /** messages sent and not yet acknowledged: id -> frame */
  readonly pending = new Map<string, Frame>();
  connects = 0;
  errors = new Map<string, number>();
  private joinedWaiters: Array<(at: number) => void> = [];
  private joinStarted = 0;

  constructor(private readonly opts: LoadClientOptions) {}

  /** Connects and joins; resolves with the time from joinRoom to history (ms). */
  start(): Promise<number> {
    const joined = new Promise<number>((resolve) => this.joinedWaiters.push(resolve));
    this.connect();
    return joined;
  }

  private connect(): void {
    if (this.closed) return;
    const url = this.opts.urls[this.urlIndex % this.opts.urls.length];
    const sock = new Socket(url, { strategy: false, manual: false, timeout: 10_000 });
    this.sock = sock;
    let open = false;
    sock.on('open', () => {
      open = true;
      this.connects++;
      // Primus starts on long-polling and upgrades to WebSocket; frames wait for the upgrade,
      // so that what is measured is the WebSocket path every client settles on.
      const eio = sock.socket;
      if (eio && eio.transport?.name !== 'websocket') {
        const go = () => {
          clearTimeout(timer);
          if (this.sock === sock) this.joinAndResend(sock);
        };
        const timer = setTimeout(go, 2000);
        eio.once('upgrade', go);
      } else this.joinAndResend(sock);
    });
    sock.on('data', (f: Frame) => this.onFrame(f));
    const gone = () => {
      if (this.sock !== sock) return;
      this.sock = undefined;
      sock.end();
      if (this.closed || !this.opts.failover) return;
      if (!open || this.opts.urls.length > 1) this.urlIndex++;
      setTimeout(() => this.connect(), 100 + Math.random() * 200);
    };
    sock.on('end', gone);
    sock.on('close', gone);
    sock.on('error', () => undefined);
  }

  private joinAndResend(sock: Primus.Client): void {
    sock.write({ type: 'hello', protocol: 2 });
    this.joinStarted = performance.now();
    sock.write(this.lastId ? { type: 'joinRoom', room: this.opts.room, since: this.lastId } : { type: 'joinRoom', room: this.opts.room });
    // What the previous connection could not get acknowledged goes again, with the same ids.
    for (const frame of this.pending.values()) sock.write(frame);
  }

  private onFrame(f: Frame): void {
    const at = performance.now();
    switch (f.type) {
      case 'joined': {
        for (const m of f.messages as WireMessage[]) this.see(m, at, false);
        const took = at - this.joinStarted;
        for (const w of this.joinedWaiters.splice(0)) w(took);
        return;
      }
      case 'deliverMessage':
        return this.see(f.message as WireMessage, at, true);
      case 'ack':
        this.pending.delete(f.clientId as string);
        return;
      case 'error': {
        const code = String(f.code);
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        const id = f.clientId as string | undefined;
        // Not stored (the database is away, or we were too fast): the same frame again, later.
        const frame = id === undefined ? undefined : this.pending.get(id);
        if (frame && (code === 'unavailable' || code === 'rate_limited')) {
          setTimeout(() => this.sock?.write(frame), Math.max(100, Number(f.retryAfterMs ?? 0)));
        }
        return;
      }
    }
  }

  private see(m: WireMessage, at: number, live: boolean): void {
    this.lastId = m.id;
    this.opts.onMessage?.(m, at, live);
  }

  send(id: string, body: string, author = 'bench'): void {
    const frame: Frame = { type: 'createMessage', message: { id, room: this.opts.room, body, author: { name: author } } };
    this.pending.set(id, frame);
    this.sock?.write(frame);
  }

  /** The engine.io transport in use ('websocket' once upgraded), if connected. */
  get transport(): string | undefined {
    return this.sock?.socket?.transport?.name;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.sock !== undefined && this.sock.readyState === 3;
  }

  close(): void {
    this.closed = true;
    this.sock?.end();
    this.sock = undefined;
  }
}
