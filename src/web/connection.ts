// The page's socket: a Primus connection (the library is loaded by /vendor/primus.js) that
// reconnects forever, shows its state in the #conn badge, and hands what it hears to the
// protocol session. Shared by the open-room page and the team page.
import type PrimusType from 'primus';
import type { OutboundFrame } from '../chat/wire.js';
import type { ClientSession } from '../client/session.js';

declare const Primus: PrimusType.ClientConstructor & { OPEN: number };

export interface PageSocket {
  /** writes a frame if the connection is open (the session resends what matters) */
  write(frame: unknown): void;
}

export function connect(badge: HTMLElement, session: () => ClientSession, hooks: { opened?: () => void; frame?: (f: OutboundFrame) => void } = {}): PageSocket {
  const primus = new Primus(location.origin, { reconnect: { min: 500, max: 10_000, retries: Infinity } });
  const show = (state: string, label = state) => {
    badge.dataset.state = state;
    badge.textContent = label;
  };
  primus.on('open', () => {
    show('live');
    session().connected();
    hooks.opened?.();
  });
  primus.on('data', (f: OutboundFrame) => {
    if (!f || typeof f !== 'object') return;
    hooks.frame?.(f);
    session().receive(f);
  });
  for (const ev of ['reconnect scheduled', 'close']) {
    primus.on(ev, () => {
      session().disconnected();
      show('reconnecting', 'reconnecting…');
    });
  }
  for (const ev of ['offline', 'end']) primus.on(ev, () => show('offline'));
  return {
    write(frame) {
      if (primus.readyState === Primus.OPEN) primus.write(frame);
    },
  };
}
