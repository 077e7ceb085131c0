/* The browser client. Plain script (served as is, CSP allows only this origin). Speaks
   protocol 2: ids chosen here so a resent message is stored once, acks, history in one
   frame, and resume from the last message seen after a reconnect. User text is only ever
   set through textContent. */
/* global Primus */
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    conn: $('conn'), join: $('join'), room: $('room'), name: $('name'), board: $('board'), empty: $('empty'),
    list: $('messages'), jump: $('jump'), compose: $('compose'), body: $('body'), send: $('send'),
  };

  var store = {
    get: function (k, d) { try { var v = localStorage.getItem(k); return v === null ? d : JSON.parse(v); } catch (e) { return d; } },
    set: function (k, v) { try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* private mode */ } },
  };

  // Ids of messages sent from this browser, to mark them as the user's own.
  var ownIds = store.get('chat.own', []);
  var own = new Set(ownIds);
  function markOwn(id) {
    own.add(id);
    ownIds.push(id);
    if (ownIds.length > 1000) ownIds = ownIds.slice(-500);
    store.set('chat.own', ownIds);
  }

  var state = {
    room: null,      // the room joined (or being joined)
    name: '',
    shown: [],       // confirmed messages in room order: {m, t, el}
    byId: new Map(),
    pending: new Map(), // id -> {room, body, author, el, failed}
    unseen: 0,
    reorderWindowMs: 5000, // told by the server's hello: how late a message may still arrive
  };

  function uuid() {
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // ---- connection ----------------------------------------------------------------------

  var primus = new Primus({ reconnect: { min: 500, max: 10000, retries: Infinity } });

  function setConn(s, label) {
    els.conn.dataset.state = s;
    els.conn.textContent = label || s;
  }
  function isOpen() { return primus.readyState === Primus.OPEN; }
  function send(frame) { if (isOpen()) primus.write(frame); }

  // A resume names the newest message shown and the ids shown from the reorder window before
  // it on: the server sends what may have been missed (a message may commit that much after
  // its timestamp), and nothing shown already.
  function joinFrame(room) {
    var last = state.shown[state.shown.length - 1];
    if (!last) return { type: 'joinRoom', room: room };
    var have = [];
    for (var i = state.shown.length - 2; i >= 0 && have.length < 1000; i--) {
      if (state.shown[i].t < last.t - state.reorderWindowMs) break;
      have.push(state.shown[i].m.id);
    }
    return { type: 'joinRoom', room: room, since: last.m.id, have: have };
  }

  primus.on('open', function () {
    setConn('live');
    primus.write({ type: 'hello', protocol: 2 });
    if (state.room !== null) primus.write(joinFrame(state.room));
    resendPending();
  });
  primus.on('reconnect scheduled', function () { setConn('reconnecting', 'reconnecting…'); });
  primus.on('close', function () { setConn('reconnecting', 'reconnecting…'); });
  primus.on('offline', function () { setConn('offline'); });
  primus.on('end', function () { setConn('offline'); });

  primus.on('data', function (f) {
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'hello': state.reorderWindowMs = f.reorderWindowMs || state.reorderWindowMs; return;
      case 'joined': return onJoined(f);
      case 'deliverMessage': return onMessage(f.message);
      case 'ack': return onAck(f);
      case 'error': return onError(f);
    }
  });

  function onJoined(f) {
    if (f.room !== state.room) return;
    var stick = !f.resumed || nearBottom();
    if (!f.resumed) clearShown();
    f.messages.forEach(function (m) { show(m); });
    els.empty.hidden = state.shown.length > 0 || state.pending.size > 0;
    if (!f.resumed) els.empty.textContent = 'No messages in this room yet. Say hello!';
    if (stick) scrollToBottom();
  }

  function onMessage(m) {
    if (!m || m.room !== state.room) return;
    var stick = nearBottom() || own.has(m.id);
    if (!show(m)) return;
    if (stick) scrollToBottom();
    else { state.unseen++; updateJump(); }
  }

  function onAck(f) {
    var p = state.pending.get(f.clientId);
    if (!p) return;
    state.pending.delete(f.clientId);
    // The message itself arrives through the room feed (maybe it already has).
    if (p.room === state.room && !state.byId.has(f.id)) {
      show({ id: f.id, room: p.room, body: p.body, author: p.author, sent: f.sent });
    }
    p.el.remove();
  }

  function onError(f) {
    if (f.code === 'rate_limited') {
      setTimeout(function () { if (f.clientId) sendPending(f.clientId); else resendPending(); }, f.retryAfterMs || 1000);
      return;
    }
    if (f.code === 'unavailable' && f.room !== undefined && f.room === state.room && !f.clientId) {
      // The server could not open the room just now: ask again.
      setTimeout(function () { if (state.room === f.room) send(joinFrame(f.room)); }, 1000);
      return;
    }
    var p = f.clientId && state.pending.get(f.clientId);
    if (p && f.code !== 'unavailable') {
      p.failed = true;
      p.el.classList.add('failed');
      p.el.title = f.message;
    }
    console.warn('chat:', f.code, f.message);
  }

  // ---- the message list -----------------------------------------------------------------

  function authorName(a) { return typeof a === 'string' ? a : (a && a.name) || 'Anonymous'; }

  function formatTime(d) {
    var today = new Date();
    var sameDay = d.toDateString() === today.toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function card(m, pending) {
    var li = document.createElement('li');
    li.className = 'msg' + (own.has(m.id) || pending ? ' mine' : '') + (pending ? ' pending' : '');
    li.dataset.id = m.id;
    var meta = document.createElement('div');
    meta.className = 'meta';
    var author = document.createElement('span');
    author.className = 'author';
    author.textContent = authorName(m.author);
    meta.appendChild(author);
    var time = document.createElement('time');
    if (m.sent) {
      var d = new Date(m.sent);
      time.dateTime = m.sent;
      time.title = d.toLocaleString();
      time.textContent = formatTime(d);
    } else {
      time.textContent = 'sending…';
    }
    meta.appendChild(time);
    var body = document.createElement('div');
    body.className = 'body';
    body.textContent = m.body;
    li.appendChild(meta);
    li.appendChild(body);
    return li;
  }

  // Every client shows a room in the same order: the server's time, then id.
  function before(a, b) { return a.t < b.t || (a.t === b.t && a.m.id < b.m.id); }

  /** Inserts a confirmed message in room order; false when it is already shown. */
  function show(m) {
    if (state.byId.has(m.id)) return false;
    var entry = { m: m, t: Date.parse(m.sent), el: card(m, false) };
    var i = state.shown.length;
    while (i > 0 && before(entry, state.shown[i - 1])) i--;
    var next = state.shown[i];
    // Pending messages stay below the confirmed ones.
    var firstPending = els.list.querySelector('.pending');
    els.list.insertBefore(entry.el, next ? next.el : firstPending);
    state.shown.splice(i, 0, entry);
    state.byId.set(m.id, entry);
    var p = state.pending.get(m.id);
    if (p) { p.el.remove(); state.pending.delete(m.id); }
    els.empty.hidden = true;
    return true;
  }

  function clearShown() {
    state.shown.forEach(function (e) { e.el.remove(); });
    state.shown = [];
    state.byId = new Map();
    state.unseen = 0;
    updateJump();
  }

  function nearBottom() {
    var l = els.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 48;
  }
  function scrollToBottom() {
    els.list.scrollTop = els.list.scrollHeight;
    state.unseen = 0;
    updateJump();
  }
  function updateJump() {
    els.jump.hidden = state.unseen === 0;
    els.jump.textContent = state.unseen === 1 ? '1 new message ↓' : state.unseen + ' new messages ↓';
  }
  els.list.addEventListener('scroll', function () { if (nearBottom() && state.unseen) { state.unseen = 0; updateJump(); } });
  els.jump.addEventListener('click', scrollToBottom);

  // ---- joining and sending --------------------------------------------------------------

  function join(room) {
    state.room = room;
    clearShown();
    state.pending.forEach(function (p) { if (p.room !== room) p.el.remove(); });
    els.empty.hidden = false;
    els.empty.textContent = 'Joining…';
    send({ type: 'joinRoom', room: room });
    els.body.disabled = false;
    els.send.disabled = false;
    els.body.placeholder = room === '' ? 'Message the lobby' : 'Message ' + room;
    document.title = (room === '' ? 'Lobby' : room) + ' · Chatroom of Requirement';
    var url = new URL(location.href);
    url.searchParams.set('room', room);
    history.replaceState(null, '', url);
  }

  els.name.value = store.get('chat.name', '');
  els.join.addEventListener('submit', function (e) {
    e.preventDefault();
    state.name = els.name.value.trim();
    store.set('chat.name', state.name);
    join(els.room.value);
    els.body.focus();
  });

  function sendPending(id) {
    var p = state.pending.get(id);
    if (!p) return;
    send({ type: 'createMessage', message: { id: id, room: p.room, body: p.body, author: p.author } });
  }
  function resendPending() {
    state.pending.forEach(function (p, id) { if (!p.failed) sendPending(id); });
  }

  function submit() {
    var body = els.body.value;
    if (!body.trim() || state.room === null) return;
    var id = uuid();
    markOwn(id);
    var p = { room: state.room, body: body, author: { name: state.name || 'Anonymous' }, failed: false, el: null };
    p.el = card({ id: id, body: body, author: p.author }, true);
    p.el.addEventListener('click', function () {
      if (!p.failed) return;
      p.failed = false;
      p.el.classList.remove('failed');
      sendPending(id);
    });
    els.list.appendChild(p.el);
    state.pending.set(id, p);
    els.empty.hidden = true;
    sendPending(id);
    els.body.value = '';
    grow();
    scrollToBottom();
  }

  els.compose.addEventListener('submit', function (e) { e.preventDefault(); submit(); });
  els.body.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  function grow() {
    els.body.style.height = 'auto';
    els.body.style.height = Math.min(els.body.scrollHeight + 2, 128) + 'px';
  }
  els.body.addEventListener('input', grow);

  // A link to a room (?room=...) joins it at once when the name is known.
  if (new URL(location.href).searchParams.has('room') && els.name.value) {
    state.name = els.name.value.trim();
    join(els.room.value);
  } else {
    els.room.focus();
  }
})();
