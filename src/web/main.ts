// The page's entry point: wires the connection (Primus, loaded by /vendor/primus.js), the
// protocol state (src/client/session.ts: room order, resume, pending sends and their
// resends), and the views. Bundled by esbuild into static/app.js at build.
import { ClientSession, type PendingSend } from '../client/session.js';
import { roomElements, wireComposer } from './composer.js';
import { connect } from './connection.js';
import { card, MessageList } from './message-list.js';
import { OwnIds, savedName } from './storage.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const els = {
  conn: $('conn'),
  join: $<HTMLFormElement>('join'),
  room: $<HTMLInputElement>('room'),
  name: $<HTMLInputElement>('name'),
  ...roomElements(),
};

const own = new OwnIds();
const view = new MessageList(els.list, els.jump, els.empty);
/** the pending messages' cards, by id */
const pendingCards = new Map<string, HTMLElement>();
let name = '';

const session: ClientSession = new ClientSession({
  write: (f) => socket.write(f),
  author: () => ({ name: name || 'Anonymous' }),
  events: {
    reset: () => view.clear(),
    message: (m, index, live) => {
      const mine = own.has(m.id);
      pendingCards.get(m.id)?.remove();
      pendingCards.delete(m.id);
      view.insert(card(m, { mine, pending: false }), index, { live, own: mine });
    },
    joined: (_room, resumed) => {
      if (!resumed && session.history.messages.length === 0 && session.pending.size === 0) view.status('No messages in this room yet. Say hello!');
      else view.status(undefined);
    },
    failed: (p: PendingSend) => {
      const el = pendingCards.get(p.id);
      if (!el) return;
      el.classList.add('failed');
      el.title = `${p.failed?.message ?? 'not sent'} (click to try again)`;
    },
    error: (f) => console.warn('chat:', f.code, f.message),
  },
});

const socket = connect(els.conn, () => session);

function join(room: string): void {
  view.clear();
  for (const [id, el] of pendingCards) {
    if (session.pending.get(id)?.room !== room) {
      el.remove();
      pendingCards.delete(id);
    }
  }
  view.status('Joining…');
  session.join(room);
  els.body.disabled = false;
  els.send.disabled = false;
  els.body.placeholder = room === '' ? 'Message the lobby' : `Message ${room}`;
  document.title = `${room === '' ? 'Lobby' : room} · Chatroom of Requirement`;
  const url = new URL(location.href);
  url.searchParams.set('room', room);
  history.replaceState(null, '', url);
}

els.name.value = savedName.get();
els.join.addEventListener('submit', (e) => {
  e.preventDefault();
  name = els.name.value.trim();
  savedName.set(name);
  join(els.room.value);
  els.body.focus();
});

function submit(): void {
  const body = els.body.value;
  if (!body.trim() || session.room === undefined) return;
  const p = session.send(body);
  own.add(p.id);
  const el = card({ id: p.id, body, author: { name: name || 'Anonymous' } }, { mine: true, pending: true });
  el.addEventListener('click', () => {
    if (!session.pending.get(p.id)?.failed) return;
    el.classList.remove('failed');
    session.retry(p.id);
  });
  pendingCards.set(p.id, el);
  view.pending(el);
  els.body.value = '';
}

wireComposer(els.compose, els.body, submit);

// A link to a room (?room=...) joins it at once when the name is known.
if (new URL(location.href).searchParams.has('room') && els.name.value) {
  name = els.name.value.trim();
  join(els.room.value);
} else els.room.focus();
