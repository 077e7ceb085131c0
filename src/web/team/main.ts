// The team chat page: the sidebar of every room the user is in (live, with unread badges),
// the open room (history, live messages, composer), and the actions: new room, browse and
// join channels, new direct message, add people, invitation links. It talks to the server
// only through the /api routes and the socket protocol, as any integration would.
import { asksToLook, inThreadOnly, notifies, type OutboundFrame, type WireLevel, type WireMessage, type WireRoom } from '../../chat/wire.js';
import { ClientSession } from '../../client/session.js';
import { roomElements, wireComposer } from '../composer.js';
import { connect } from '../connection.js';
import { decorateBotMessage } from './attachments.js';
import { card, MessageList } from '../message-list.js';
import { api, ApiError } from './api.js';
import { Sidebar } from './sidebar.js';
import { ThreadPane } from './thread.js';
import { fileView, wireUploads } from './upload.js';
import { PresenceView } from './presence.js';
import { SearchPanel } from './search.js';

interface Me {
  id: string;
  username: string;
  displayName: string;
  role: 'owner' | 'admin' | 'member' | 'guest';
}
interface Person {
  id: string;
  username: string;
  displayName: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const els = {
  conn: $('conn'),
  sidebar: $('sidebar'),
  menu: $<HTMLButtonElement>('menu'),
  roomName: $('room-name'),
  roomTopic: $('room-topic'),
  roomMembers: $('room-members'),
  addPeople: $<HTMLButtonElement>('add-people'),
  roomSettings: $<HTMLButtonElement>('room-settings'),
  level: $<HTMLSelectElement>('room-level'),
  notifyEnable: $<HTMLButtonElement>('notify-enable'),
  joinBar: $('join-bar'),
  join: $<HTMLButtonElement>('join'),
  thread: $('thread'),
  typing: $('typing'),
  ...roomElements(),
  dialog: $<HTMLDialogElement>('dialog'),
  notice: $('notice'),
};

const me = JSON.parse(document.querySelector<HTMLMetaElement>('meta[name="me"]')!.content) as Me;
const rooms = new Map<string, WireRoom>();
const dmNames = new Map<string, string>();
const view = new MessageList(els.list, els.jump, els.empty);
const pendingCards = new Map<string, HTMLElement>();
let current: string | undefined;
/** a public channel the user is not in, opened by a link: shown read-only, not in the sidebar */
let preview: WireRoom | undefined;
/** One answer for a linked message one may not see and for one that does not exist. */
const NOT_FOUND = 'That message was not found.';

const sidebar = new Sidebar(els.sidebar, { open: (id) => openRoom(id) });
const draw = () =>
  sidebar.render(rooms.values(), current, (r) => dmNames.get(r.id) ?? 'Direct message', (r) => {
    const people = dmPeople.get(r.id);
    return people?.length === 1 ? presence.stateOf(people[0]) : undefined;
  });

function notice(text: string): void {
  els.notice.textContent = text;
  els.notice.hidden = text === '';
}

const session: ClientSession = new ClientSession({
  write: (f) => socket.write(f),
  author: () => ({ name: me.displayName }),
  events: {
    reset: () => view.clear(),
    message: (m, index, live) => {
      const mine = typeof m.author === 'object' && m.author.id === me.id;
      pendingCards.get(m.id)?.remove();
      pendingCards.delete(m.id);
      const el = messageCard(m);
      if (loadingOlder) view.keepPosition(() => view.insert(el, index, { live: true, own: false }));
      else view.insert(el, index, { live, own: mine });
      if (m.thread !== undefined) thread.reply(m);
      markRead();
    },
    changed: (m, index) => {
      view.replace(messageCard(m), index);
      thread.changed(m);
    },
    reply: (m) => thread.reply(m),
    replyChanged: (m) => thread.changed(m),
    joined: (room, resumed) => {
      view.status(session.history.messages.length === 0 ? 'No messages here yet. Say hello!' : undefined);
      if (!resumed) afterJoin(room);
      markRead();
    },
    failed: (p) => {
      const el = pendingCards.get(p.id);
      if (el) {
        el.classList.add('failed');
        el.title = p.failed?.message ?? 'not sent';
      }
    },
    error: (f) => {
      if (f.room !== undefined && f.room === current && (f.code === 'not_found' || f.code === 'forbidden')) notice(f.message);
    },
  },
});

/** The open room is read up to its newest message while the page is visible. */
function markRead(): void {
  const newest = session.history.messages.at(-1);
  if (!current || !newest || document.hidden) return;
  const room = rooms.get(current);
  if (!room) return; // a preview: no read position to keep
  if (room.unread === 0 && lastRead.get(room.id) === newest.id) return;
  lastRead.set(current, newest.id);
  room.unread = 0;
  room.mentions = 0;
  socket.write({ type: 'read', room: current, id: newest.id });
  draw();
}
const lastRead = new Map<string, string>();
document.addEventListener('visibilitychange', markRead);

/** What the team page does with a frame before the session takes it. */
function onFrame(f: OutboundFrame): void {
  switch (f.type) {
    case 'rooms':
      rooms.clear();
      for (const r of f.rooms) rooms.set(r.id, r);
      void nameDms();
      draw();
      if (!current) {
        const params = new URL(location.href).searchParams;
        const wanted = params.get('room');
        linked = params.get('message') ?? undefined;
        linkedReply = params.get('reply') ?? undefined;
        if (wanted && !rooms.has(wanted)) void openLinked(wanted);
        else openFirst(wanted ?? undefined);
      }
      break;
    case 'roomAdded':
      rooms.set(f.room.id, f.room);
      if (f.room.id === current) showLevel(f.room);
      void nameDms();
      draw();
      break;
    case 'roomRemoved':
      rooms.delete(f.room);
      if (current === f.room) {
        current = undefined;
        view.clear();
        view.status('You are no longer in this room.');
        els.roomName.textContent = '';
        els.body.disabled = true;
        els.send.disabled = true;
      }
      draw();
      break;
    case 'read': {
      const r = rooms.get(f.room);
      if (r) {
        r.unread = f.unread;
        r.mentions = f.mentions;
      }
      draw();
      break;
    }
    case 'presence':
      presence.receive(f.users);
      break;
    case 'typing':
      if (f.room === current) presence.typing(f.userId, f.name);
      break;
    case 'roomUpdated':
      rooms.set(f.room.id, f.room);
      if (f.room.id === current) showLevel(f.room);
      draw();
      break;
    case 'error':
      // The session ended (logged out elsewhere, password changed, disabled): the server has
      // closed the socket for good; only a new log-in brings the page back.
      if (f.code === 'unauthenticated') sessionEnded();
      break;
    case 'deliverMessage': {
      const m = f.message;
      const r = rooms.get(m.room);
      const mine = typeof m.author === 'object' && m.author.id === me.id;
      if (r && (m.room !== current || document.hidden) && !mine) {
        if (!inThreadOnly(m)) r.unread++;
        if (asksToLook(m, me.id)) r.mentions++;
        draw();
      }
      if (r && document.hidden) notify(r, m);
      if (m.room === current && typeof m.author === 'object' && m.author.id) presence.stopped(m.author.id);
      break;
    }
  }
}

// ---- threads, notification levels, desktop notifications -------------------------------

const thread = new ThreadPane(els.thread, {
  card: (m) => messageCard(m, { inThread: true }),
  send: (start, body, alsoRoom) => {
    if (current === undefined) return undefined;
    const p = session.send(body, undefined, { thread: start, alsoRoom });
    const el = card({ id: p.id, body, author: { name: me.displayName } }, { mine: true, pending: true });
    el.addEventListener('click', () => {
      if (session.pending.get(p.id)?.failed) session.retry(p.id);
    });
    return el;
  },
  canReply: () => current !== undefined && preview?.id !== current,
  following: (start) => (start.followers ?? (typeof start.author === 'object' && start.author.id ? [start.author.id] : [])).includes(me.id),
  notice,
});

// Search across every room one may read (src/web/team/search.ts); a result is a permalink.
new SearchPanel($('search'), $('search-results'), (r) => (r.kind === 'dm' ? (dmNames.get(r.id) ?? 'Direct message') : `${r.kind === 'channel' ? '#' : '🔒 '}${r.name}`));

function showLevel(r: WireRoom): void {
  els.level.value = r.levelChosen ? r.level : '';
  els.level.options[0].textContent = `the default (${r.level === 'all' && !r.levelChosen ? 'every message' : r.levelChosen ? 'as the room decides' : 'mentions only'})`;
  els.level.parentElement!.hidden = false;
}
els.level.addEventListener('change', () => {
  const id = current;
  if (!id) return;
  const level = (els.level.value || null) as WireLevel | null;
  api('PUT', `/api/rooms/${id}/level`, { level }).catch((e: unknown) => notice(e instanceof Error ? e.message : String(e)));
});

/** A desktop notification, when the tab is hidden and the room's level asks for it. */
function notify(r: WireRoom, m: WireMessage): void {
  if (!('Notification' in window) || Notification.permission !== 'granted' || !notifies(r.level, m, me.id)) return;
  const where = r.kind === 'dm' ? (dmNames.get(r.id) ?? 'Direct message') : r.name;
  const who = typeof m.author === 'object' ? m.author.name : m.author;
  const n = new Notification(`${who} in ${where}`, { body: m.body.slice(0, 200), tag: m.id });
  n.onclick = () => {
    window.focus();
    openRoom(r.id);
  };
}
if ('Notification' in window && Notification.permission === 'default') {
  els.notifyEnable.hidden = false;
  els.notifyEnable.addEventListener('click', () => {
    void Notification.requestPermission().then(() => (els.notifyEnable.hidden = true));
  });
}

function sessionEnded(): void {
  els.notice.replaceChildren('Your session has ended. ', Object.assign(document.createElement('a'), { href: "/login", textContent: 'Log in again' }));
  els.notice.hidden = false;
  els.body.disabled = true;
  els.send.disabled = true;
}

const socket = connect(els.conn, () => session, {
  opened: () => {
    socket.write({ type: 'watch' });
    presence.reopened();
  },
  frame: onFrame,
});

// ---- presence and typing -------------------------------------------------------------------

/** the other people of each DM, and the members of the open room: whose presence is shown */
const dmPeople = new Map<string, string[]>();
let roomPeople: string[] = [];
const presence = new PresenceView(
  (f) => socket.write(f),
  () => {
    draw();
    showMembers();
  },
  (names) => {
    els.typing.textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, 3).join(', ')} are typing…`;
  },
);
const askPresence = () => presence.want([...[...dmPeople.values()].flat(), ...roomPeople]);
function showMembers(): void {
  if (!current || roomPeople.length === 0) return;
  const online = roomPeople.filter((id) => presence.stateOf(id) === 'online').length;
  els.roomMembers.textContent = `${roomPeople.length} member${roomPeople.length === 1 ? '' : 's'} · ${online} online`;
}
els.body.addEventListener('input', () => {
  if (current && els.body.value.trim()) presence.typed(current);
});

async function nameDms(): Promise<void> {
  for (const r of rooms.values()) {
    if (r.kind !== 'dm' || dmNames.has(r.id)) continue;
    const { members } = await api<{ members: Person[] }>('GET', `/api/rooms/${r.id}/members`);
    dmPeople.set(r.id, members.filter((p) => p.id !== me.id).map((p) => p.id));
    dmNames.set(r.id, members.filter((p) => p.id !== me.id).map((p) => p.displayName).join(', ') || 'Just you');
  }
  askPresence();
  draw();
}

// ---- messages: actions, reactions, older pages, permalinks, the unread divider -----------

interface Workspace {
  editWindowMinutes: number;
  deletedMessages: 'tombstone' | 'hide';
}
let workspace: Workspace = { editWindowMinutes: 0, deletedMessages: 'tombstone' };
void api<{ workspace: Workspace }>('GET', '/api/workspace').then(({ workspace: w }) => (workspace = w), () => undefined);
const QUICK_REACTIONS = ['👍', '🎉', '❤️', '😄', '👀'];
/** the read position when the room was opened: where the divider goes */
let openedReadId: string | undefined;
/** a permalinked message to show once the room is loaded */
let linked: string | undefined;
/** with it, a reply in its thread (a search result): the thread is opened */
let linkedReply: string | undefined;
let loadingOlder = false;
let noOlder = false;

const isMine = (m: WireMessage) => typeof m.author === 'object' && m.author.id === me.id;
const mayManage = () => me.role === 'owner' || me.role === 'admin';

/** A confirmed message as the team page shows it: the card, its reactions, its actions. */
function messageCard(m: WireMessage, where: { inThread?: boolean } = {}): HTMLElement {
  const el = card(m, { mine: isMine(m), pending: false });
  if (m.bot || m.attachments) decorateBotMessage(el, m);
  if (m.file && !m.deleted) el.querySelector('.body')?.after(fileView(m.file));
  if (m.event) el.classList.add('system');
  if (m.thread !== undefined && !where.inThread) el.querySelector('.meta')?.append(Object.assign(document.createElement('span'), { className: 'in-thread', textContent: 'replied in a thread' }));
  if (m.deleted) {
    if (workspace.deletedMessages === 'hide') el.hidden = true;
    return el;
  }
  if (m.event) return el;
  const reactions = document.createElement('div');
  reactions.className = 'reactions';
  for (const [emoji, who] of Object.entries(m.reactions ?? {})) {
    const b = Object.assign(document.createElement('button'), { type: 'button', className: `reaction${who.includes(me.id) ? ' mine' : ''}`, textContent: `${emoji} ${who.length}` });
    b.dataset.emoji = emoji;
    b.setAttribute('aria-pressed', String(who.includes(me.id)));
    b.addEventListener('click', () => void toggleReaction(m, emoji));
    reactions.append(b);
  }
  const actions = document.createElement('div');
  actions.className = 'actions';
  const act = (label: string, title: string, fn: () => void) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: label, title, className: 'act' });
    b.setAttribute('aria-label', title);
    b.addEventListener('click', fn);
    actions.append(b);
  };
  // A preview is read-only: a link to copy, and the replies to read.
  const reading = preview?.id === m.room;
  if (!reading) for (const emoji of QUICK_REACTIONS.slice(0, 3)) act(emoji, `React with ${emoji}`, () => void toggleReaction(m, emoji));
  if (isMine(m) && !reading) act('✎', 'Edit', () => editMessage(m));
  if ((isMine(m) || mayManage() || currentOwner === me.id) && !reading) act('🗑', 'Delete', () => deleteMessage(m));
  act('🔗', 'Copy link', () => {
    const url = new URL(location.href);
    url.searchParams.set('room', m.room);
    url.searchParams.set('message', m.id);
    void navigator.clipboard?.writeText(url.href);
    notice('Link copied.');
  });
  if (m.thread === undefined && !where.inThread) {
    if (!reading) act('💬', 'Reply in thread', () => void thread.open(m));
    if ((m.replies ?? 0) > 0) {
      const last = m.lastReply ? new Date(m.lastReply).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
      const link = Object.assign(document.createElement('button'), { type: 'button', className: 'thread-link', textContent: `${m.replies} repl${m.replies === 1 ? 'y' : 'ies'}${last ? ` · last at ${last}` : ''}` });
      link.addEventListener('click', () => void thread.open(m));
      reactions.append(link);
    }
  }
  el.tabIndex = 0; // a tap or Tab shows the actions
  el.append(reactions, actions);
  return el;
}

async function toggleReaction(m: WireMessage, emoji: string): Promise<void> {
  const held = session.history.messages.find((x) => x.id === m.id) ?? m;
  const on = !(held.reactions?.[emoji] ?? []).includes(me.id);
  const path = `/api/rooms/${m.room}/messages/${m.id}/reactions`;
  try {
    const { message } = on ? await api<{ message: WireMessage }>('POST', path, { emoji }) : await api<{ message: WireMessage }>('DELETE', `${path}/${encodeURIComponent(emoji)}`);
    session.receive({ type: 'messageChanged', message });
  } catch (e) {
    notice(e instanceof Error ? e.message : String(e));
  }
}

function editMessage(m: WireMessage): void {
  let text: HTMLTextAreaElement;
  dialog(
    'Edit message',
    (f) => {
      text = Object.assign(document.createElement('textarea'), { name: 'body', value: m.body, rows: 4 });
      f.append(text);
    },
    async () => {
      const { message } = await api<{ message: WireMessage }>('PATCH', `/api/rooms/${m.room}/messages/${m.id}`, { body: text.value });
      session.receive({ type: 'messageChanged', message });
    },
  );
}

function deleteMessage(m: WireMessage): void {
  if (!window.confirm('Delete this message for everyone?')) return;
  api('DELETE', `/api/rooms/${m.room}/messages/${m.id}`).catch((e: unknown) => notice(e instanceof Error ? e.message : String(e)));
}

/** The room's history arrived: the unread divider, and a permalinked message with context. */
function afterJoin(room: string): void {
  noOlder = false;
  const list = session.history.messages;
  const readAt = openedReadId === undefined ? -1 : list.findIndex((m) => m.id === openedReadId);
  view.divider(readAt >= 0 && readAt < list.length - 1 ? readAt + 1 : undefined);
  const want = linked;
  linked = undefined;
  if (want === undefined) return;
  void api<{ messages: WireMessage[] }>('GET', `/api/rooms/${room}/messages?around=${encodeURIComponent(want)}&limit=50`).then(
    ({ messages }) => {
      if (session.room !== room) return;
      view.keepPosition(() => {
        loadingOlder = true;
        for (const m of messages) session.receive({ type: 'deliverMessage', message: m });
        loadingOlder = false;
      });
      view.show(want);
      const start = linkedReply === undefined ? undefined : messages.find((m) => m.id === want);
      linkedReply = undefined;
      if (start) void thread.open(start);
    },
    () => notice(NOT_FOUND),
  );
}

/** Scrolled to the top: the page before the oldest message shown. */
view.onTop(() => {
  const room = session.room;
  const oldest = session.history.messages[0];
  if (loadingOlder || noOlder || !room || !oldest) return;
  loadingOlder = true;
  api<{ messages: WireMessage[]; more: { older: boolean } }>('GET', `/api/rooms/${room}/messages?before=${encodeURIComponent(oldest.id)}&limit=50`).then(
    ({ messages, more }) => {
      if (session.room === room) {
        for (const m of messages) session.receive({ type: 'deliverMessage', message: m });
        noOlder = !more.older;
      }
      loadingOlder = false;
    },
    () => (loadingOlder = false),
  );
});

let currentOwner: string | null | undefined;

/** The linked room (when the user is in it), else the sidebar's first room. */
function openFirst(wanted?: string): void {
  const first = (wanted && rooms.get(wanted)) || [...rooms.values()][0];
  if (first) openRoom(first.id);
  else view.status('You are in no room yet: make one, or browse the channels.');
}

/** A link to a room not in the sidebar: a public channel opens as a preview; a room one may
 *  not see answers as one that does not exist (the server's 404 for both), and the first
 *  room opens with the same notice. */
async function openLinked(id: string): Promise<void> {
  const found = await api<{ room: Omit<WireRoom, 'unread' | 'mentions' | 'level' | 'levelChosen'> & { isMember: boolean } }>('GET', `/api/rooms/${encodeURIComponent(id)}`).catch(() => undefined);
  if (current !== undefined) return; // opened meanwhile
  const room = found?.room;
  if (room && room.kind === 'channel' && !room.isMember) {
    preview = { ...room, unread: 0, mentions: 0, level: 'mentions', levelChosen: false };
    return openRoom(id);
  }
  if (room && rooms.has(id)) return openRoom(id); // joined meanwhile, on another device
  linked = linkedReply = undefined;
  openFirst();
  notice(NOT_FOUND);
}

els.join.addEventListener('click', () => {
  const r = preview;
  if (!r || current !== r.id) return;
  els.join.disabled = true;
  api<{ room: WireRoom }>('POST', `/api/rooms/${r.id}/join`).then(
    ({ room }) => {
      els.join.disabled = false;
      // The messages shown stay; the socket's membership feed adds the room (roomAdded) and
      // its messages keep coming through the join the preview made.
      if (!rooms.has(room.id)) rooms.set(room.id, { ...r, ...room });
      preview = undefined;
      if (current === room.id) {
        showChrome(rooms.get(room.id)!);
        loadMembers(room.id); // one more now
        // The cards drawn read-only get their actions, the linked one keeps its mark.
        const marked = els.list.querySelector<HTMLElement>('.msg.linked')?.dataset.id;
        session.history.messages.forEach((m, i) => view.replace(messageCard(m), i));
        if (marked) [...els.list.querySelectorAll<HTMLElement>('.msg')].find((x) => x.dataset.id === marked)?.classList.add('linked');
      }
      draw();
    },
    (e: unknown) => {
      els.join.disabled = false;
      notice(e instanceof Error ? e.message : String(e));
    },
  );
});

/** The open room's header buttons and composer: a preview has a Join button instead. */
function showChrome(r: WireRoom): void {
  const previewing = preview?.id === r.id;
  els.joinBar.hidden = !previewing;
  els.compose.hidden = previewing;
  els.body.disabled = r.archived;
  els.send.disabled = r.archived;
  els.body.placeholder = r.archived ? 'This room is archived' : `Message ${r.kind === 'dm' ? (dmNames.get(r.id) ?? '') : r.name}`;
  els.addPeople.hidden = previewing || r.kind === 'dm' || me.role === 'guest';
  els.roomSettings.hidden = previewing || r.kind === 'dm';
  if (previewing) els.level.parentElement!.hidden = true;
  else showLevel(r);
}

function openRoom(id: string): void {
  if (preview && preview.id !== id) preview = undefined;
  const r = rooms.get(id) ?? preview;
  if (!r) return;
  openedReadId = r.unread > 0 ? r.readId : undefined;
  currentOwner = undefined;
  void api<{ room: { ownerId: string | null } }>('GET', `/api/rooms/${id}`).then(({ room }) => (currentOwner = room.ownerId), () => undefined);
  notice('');
  current = id;
  view.clear();
  view.status('Loading…');
  session.join(id);
  els.roomName.textContent = r.kind === 'dm' ? (dmNames.get(id) ?? 'Direct message') : `${r.kind === 'channel' ? '#' : '🔒 '}${r.name}`;
  els.roomTopic.textContent = r.topic;
  showChrome(r);
  thread.close();
  els.sidebar.classList.remove('open');
  const url = new URL(location.href);
  url.searchParams.set('room', id);
  history.replaceState(null, '', url);
  presence.stopped();
  roomPeople = [];
  loadMembers(id);
  draw();
}

/** The open room's member count in the header, and whose presence to follow. */
function loadMembers(id: string): void {
  void api<{ members: Person[] }>('GET', `/api/rooms/${id}/members`).then(
    ({ members }) => {
      if (current !== id) return;
      els.roomMembers.textContent = `${members.length} member${members.length === 1 ? '' : 's'}`;
      roomPeople = members.map((p) => p.id);
      askPresence();
      showMembers();
    },
    () => undefined,
  );
}

function submit(): void {
  const body = els.body.value;
  if (!body.trim() || current === undefined) return;
  const p = session.send(body);
  const el = card({ id: p.id, body, author: { name: me.displayName } }, { mine: true, pending: true });
  el.addEventListener('click', () => {
    if (session.pending.get(p.id)?.failed) session.retry(p.id);
  });
  pendingCards.set(p.id, el);
  view.pending(el);
  els.body.value = '';
}
wireComposer(els.compose, els.body, submit);
wireUploads({ room: () => (current === preview?.id ? undefined : current), box: els.body, button: $<HTMLButtonElement>('attach'), input: $<HTMLInputElement>('file-input'), dropZone: document.querySelector<HTMLElement>('section.room')!, list: $('uploads'), notice });
els.menu.addEventListener('click', () => els.sidebar.classList.toggle('open'));

// ---- dialogs -----------------------------------------------------------------------------

/** Shows a small form in the dialog; `submit` returns an error message or nothing. */
function dialog(title: string, build: (form: HTMLFormElement) => void, submit: (form: HTMLFormElement) => Promise<string | void>): void {
  const form = document.createElement('form');
  form.method = 'dialog';
  form.className = 'stack';
  const h = document.createElement('h2');
  h.textContent = title;
  form.append(h);
  build(form);
  const error = document.createElement('p');
  error.className = 'notice';
  error.hidden = true;
  const buttons = document.createElement('div');
  buttons.className = 'buttons';
  const ok = document.createElement('button');
  ok.type = 'submit';
  ok.textContent = 'OK';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'secondary';
  cancel.textContent = 'Cancel';
  cancel.addEventListener('click', () => els.dialog.close());
  buttons.append(ok, cancel);
  form.append(error, buttons);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit(form).then(
      (message) => {
        if (message) {
          error.textContent = message;
          error.hidden = false;
        } else els.dialog.close();
      },
      (err: unknown) => {
        error.textContent = err instanceof Error ? err.message : String(err);
        error.hidden = false;
      },
    );
  });
  els.dialog.replaceChildren(form);
  els.dialog.showModal();
}

function field(form: HTMLFormElement, label: string, input: HTMLInputElement): HTMLInputElement {
  const l = document.createElement('label');
  const span = document.createElement('span');
  span.textContent = label;
  l.append(span, input);
  form.append(l);
  return input;
}
const input = (name: string, type = 'text') => Object.assign(document.createElement('input'), { name, type });

async function people(): Promise<Person[]> {
  return (await api<{ users: Person[] }>('GET', '/api/users')).users.filter((u) => u.id !== me.id);
}
function checklist(form: HTMLFormElement, list: Person[]): () => string[] {
  const box = document.createElement('div');
  box.className = 'checklist';
  for (const p of list) {
    const l = document.createElement('label');
    const c = Object.assign(document.createElement('input'), { type: 'checkbox', value: p.id, name: 'person' });
    l.append(c, document.createTextNode(` ${p.displayName} (@${p.username})`));
    box.append(l);
  }
  form.append(box);
  return () => [...box.querySelectorAll<HTMLInputElement>('input:checked')].map((c) => c.value);
}

$('new-room')?.addEventListener('click', () => {
  let name: HTMLInputElement;
  let priv: HTMLInputElement;
  dialog(
    'New room',
    (f) => {
      name = field(f, 'Name', input('name'));
      priv = field(f, 'Private (only the people you add see it)', input('private', 'checkbox'));
    },
    async () => {
      const { room } = await api<{ room: WireRoom }>('POST', '/api/rooms', { kind: priv.checked ? 'group' : 'channel', name: name.value });
      rooms.set(room.id, { ...room, unread: 0 });
      openRoom(room.id);
    },
  );
});

$('browse')?.addEventListener('click', () => {
  void api<{ channels: Array<WireRoom & { isMember: boolean }> }>('GET', '/api/channels').then(({ channels }) => {
    dialog(
      'Channels',
      (f) => {
        const ul = document.createElement('ul');
        ul.className = 'channel-list';
        for (const c of channels) {
          const li = document.createElement('li');
          const b = document.createElement('button');
          b.type = 'button';
          b.textContent = c.isMember ? `#${c.name} (open)` : `Join #${c.name}`;
          b.addEventListener('click', () => {
            void api<{ room: WireRoom }>('POST', `/api/rooms/${c.id}/join`).then(({ room }) => {
              rooms.set(room.id, { ...room, unread: 0 });
              els.dialog.close();
              openRoom(room.id);
            });
          });
          li.append(b);
          ul.append(li);
        }
        if (channels.length === 0) ul.textContent = 'No channels yet.';
        f.append(ul);
      },
      async () => undefined,
    );
  }, (e: unknown) => notice(e instanceof ApiError ? e.message : String(e)));
});

$('new-dm')?.addEventListener('click', () => {
  void people().then((list) => {
    let chosen: () => string[];
    dialog('New direct message', (f) => (chosen = checklist(f, list)), async () => {
      const ids = chosen();
      if (ids.length === 0) return 'choose someone';
      const { room } = await api<{ room: WireRoom }>('POST', '/api/dms', { userIds: ids });
      rooms.set(room.id, { ...room, unread: 0 });
      await nameDms();
      openRoom(room.id);
    });
  });
});

els.addPeople.addEventListener('click', () => {
  const id = current;
  if (!id) return;
  void Promise.all([people(), api<{ members: Person[] }>('GET', `/api/rooms/${id}/members`)]).then(([list, { members }]) => {
    const inRoom = new Set(members.map((m) => m.id));
    let chosen: () => string[];
    dialog('Add people', (f) => (chosen = checklist(f, list.filter((p) => !inRoom.has(p.id)))), async () => {
      for (const userId of chosen()) await api('POST', `/api/rooms/${id}/members`, { userId });
    });
  });
});

$('invite')?.addEventListener('click', () => {
  let guest: HTMLInputElement;
  let uses: HTMLInputElement;
  dialog(
    'Invite people',
    (f) => {
      uses = field(f, 'How many people may use the link', Object.assign(input('uses', 'number'), { value: '1', min: '1' }));
      guest = field(f, 'As guests (they see only the rooms they are added to)', input('guest', 'checkbox'));
    },
    async (f) => {
      const { invite } = await api<{ invite: { path: string } }>('POST', '/api/invites', { maxUses: Number(uses.value) || 1, role: guest.checked ? 'guest' : 'member' });
      const out = document.createElement('input');
      out.readOnly = true;
      out.id = 'invite-link';
      out.value = new URL(invite.path, location.origin).href;
      f.querySelector('.buttons')?.before(out);
      return 'Share this link (it is shown once):';
    },
  );
});

// The open room's settings: name, topic, archived, announcement-only and default (for its
// owner and admins; the server decides, and its refusal is shown), its members, leave, delete.
els.roomSettings.addEventListener('click', () => {
  const id = current;
  if (!id) return;
  void Promise.all([api<{ room: WireRoom & { ownerId: string | null; isDefault: boolean } }>('GET', `/api/rooms/${id}`), api<{ members: Person[] }>('GET', `/api/rooms/${id}/members`)]).then(
    ([{ room }, { members }]) => {
      const manager = room.ownerId === me.id || me.role === 'owner' || me.role === 'admin';
      let name: HTMLInputElement;
      let topic: HTMLInputElement;
      let archived: HTMLInputElement;
      let announcement: HTMLInputElement;
      let isDefault: HTMLInputElement | undefined;
      const button = (label: string, action: () => Promise<unknown>, confirmText?: string) => {
        const b = Object.assign(document.createElement('button'), { type: 'button', textContent: label, className: 'secondary' });
        b.addEventListener('click', () => {
          if (confirmText && !window.confirm(confirmText)) return;
          action().then(
            () => els.dialog.close(),
            (e: unknown) => window.alert(e instanceof Error ? e.message : String(e)),
          );
        });
        return b;
      };
      dialog(
        room.kind === 'channel' ? `#${room.name}` : room.name,
        (f) => {
          name = field(f, 'Name', Object.assign(input('name'), { value: room.name, disabled: !manager }));
          topic = field(f, 'Topic', Object.assign(input('topic'), { value: room.topic, disabled: !manager }));
          archived = field(f, 'Archived (kept, read-only)', Object.assign(input('archived', 'checkbox'), { checked: room.archived, disabled: !manager }));
          announcement = field(f, 'Only admins and the room\'s owner post', Object.assign(input('announcement', 'checkbox'), { checked: room.announcement, disabled: !manager }));
          if (room.kind === 'channel' && (me.role === 'owner' || me.role === 'admin')) isDefault = field(f, 'Default (every new account joins)', Object.assign(input('isDefault', 'checkbox'), { checked: room.isDefault }));
          const h = document.createElement('h3');
          h.textContent = `Members (${members.length})`;
          const ul = document.createElement('ul');
          ul.className = 'member-list';
          for (const p of members) {
            const li = document.createElement('li');
            li.textContent = `${p.displayName} (@${p.username}) `;
            const state = presence.stateOf(p.id);
            if (state) li.prepend(Object.assign(document.createElement('span'), { className: `presence ${state}`, title: state }));
            if (manager && p.id !== me.id) li.append(button('Remove', () => api('DELETE', `/api/rooms/${id}/members/${p.id}`), `Remove ${p.displayName} from this room?`));
            ul.append(li);
          }
          const actions = document.createElement('div');
          actions.className = 'buttons';
          actions.append(button('Leave room', () => api('POST', `/api/rooms/${id}/leave`), 'Leave this room?'));
          if (manager) actions.append(button('Delete room', () => api('DELETE', `/api/rooms/${id}`), 'Delete this room and all its messages for everyone?'));
          f.append(h, ul, actions);
        },
        async () => {
          if (!manager) return;
          const patch: Record<string, string | boolean> = {};
          if (name.value !== room.name) patch.name = name.value;
          if (topic.value !== room.topic) patch.topic = topic.value;
          if (archived.checked !== room.archived) patch.archived = archived.checked;
          if (announcement.checked !== room.announcement) patch.announcement = announcement.checked;
          if (isDefault && isDefault.checked !== room.isDefault) patch.isDefault = isDefault.checked;
          if (Object.keys(patch).length === 0) return;
          const { room: changed } = await api<{ room: WireRoom }>('PATCH', `/api/rooms/${id}`, patch);
          const known = rooms.get(id);
          if (known) rooms.set(id, { ...known, ...changed, unread: known.unread });
          if (current === id) openRoom(id);
        },
      );
    },
    (e: unknown) => notice(e instanceof Error ? e.message : String(e)),
  );
});
