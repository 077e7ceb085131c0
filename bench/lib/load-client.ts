// A chat client for load and chaos runs: a real Primus client (engine.io, upgraded to
// WebSocket) driven by the client protocol module (src/client/session.ts), as the page is. It
// can fail over to another app process and resume from what it holds, and it resends what was
// not acknowledged, with the same id, so that a message is stored once whatever happens to
// the process it was sent through.
import Primus from 'primus';
import type { OutboundFrame, WireMessage } from '../../src/chat/wire.js';
import { ClientSession } from '../../src/client/session.js';

const Socket = Primus.createSocket({ transformer: 'engine.io', parser: 'JSON', pathname: '/primus', pingInterval: false });

export interface LoadClientOptions {
  /** app processes to try, in turn; the first is used first */
  urls: string[];
  room: string;
  /** every message the client takes into its room (history included, each once), with the
   *  time it arrived (performance.now()) */
  onMessage?: (m: WireMessage, at: number, live: boolean) => void;
  /** every deliverMessage and joined frame's messages as they arrive, duplicates included */
  onArrival?: (m: WireMessage) => void;
  /** a message this client sent was acknowledged */
  onAck?: (clientId: string) => void;
  /** open a new connection (to the next url) when this one ends; otherwise stay closed */
  failover?: boolean;
  author?: string;
}

export class LoadClient {
  private sock: Primus.Client | undefined;
  private urlIndex = 0;
  private closed = false;
  readonly session: ClientSession;
  connects = 0;
  errors = new Map<string, number>();
  private joinedWaiters: Array<(at: number) => void> = [];
  private joinStarted = 0;

  constructor(private readonly opts: LoadClientOptions) {
    const author = { name: opts.author ?? 'bench' };
    this.session = new ClientSession({
      write: (f) => this.sock?.write(f),
      author: () => author,
      events: {
        message: (m, _i, live) => this.opts.onMessage?.(m, performance.now(), live),
        joined: () => {
          const took = performance.now() - this.joinStarted;
          for (const w of this.joinedWaiters.splice(0)) w(took);
        },
        acked: (p) => this.opts.onAck?.(p.id),
        error: (f) => this.errors.set(f.code, (this.errors.get(f.code) ?? 0) + 1),
      },
    });
    this.session.join(opts.room);
  }

  /** messages sent and not yet acknowledged */
  get pending(): ReadonlyMap<string, unknown> {
    return this.session.pending;
  }

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
      const go = () => {
        clearTimeout(timer);
        if (this.sock !== sock) return;
        this.joinStarted = performance.now();
        this.session.connected();
      };
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (eio && eio.transport?.name !== 'websocket') {
        timer = setTimeout(go, 2000);
        eio.once('upgrade', go);
      } else go();
    });
    sock.on('data', (f: OutboundFrame) => {
      if (this.sock !== sock) return;
      if (this.opts.onArrival) {
        if (f.type === 'deliverMessage') this.opts.onArrival(f.message);
        else if (f.type === 'joined') for (const m of f.messages) this.opts.onArrival(m);
      }
      this.session.receive(f);
    });
    const gone = () => {
      if (this.sock !== sock) return;
      this.sock = undefined;
      this.session.disconnected();
      sock.end();
      if (this.closed || !this.opts.failover) return;
      if (!open || this.opts.urls.length > 1) this.urlIndex++;
      setTimeout(() => this.connect(), 100 + Math.random() * 200);
    };
    sock.on('end', gone);
    sock.on('close', gone);
    sock.on('error', () => undefined);
  }

  send(id: string, body: string): void {
    this.session.send(body, id);
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
    this.session.close();
    this.sock?.end();
    this.sock = undefined;
  }
}
