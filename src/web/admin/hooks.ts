// The admin page's webhooks: every hook (kind, room, target, trigger words, revoked) with a
// Revoke button, and the outgoing deliveries given up on, with their last error. Text goes in
// through textContent only.
import { api } from '../team/api.js';

interface Hook {
  id: string;
  kind: 'incoming' | 'outgoing';
  name: string;
  roomId: string;
  revoked: boolean;
  url?: string;
  triggerWords?: string[];
}
interface Failed {
  id: string;
  hookId: string;
  roomId: string;
  attempts: number;
  lastError: string;
  at: string;
}

const cell = (text: string) => Object.assign(document.createElement('td'), { textContent: text });

export async function hooksSection(say: (e: unknown) => void): Promise<void> {
  const hooksBody = document.querySelector('#hooks tbody');
  const failedBody = document.querySelector('#deliveries tbody');
  if (!hooksBody || !failedBody) return;
  const [{ hooks, failed }, { rooms }] = await Promise.all([
    api<{ hooks: Hook[]; failed: Failed[] }>('GET', '/api/hooks'),
    api<{ channels: Array<{ id: string; name: string }> }>('GET', '/api/channels').then((c) => ({ rooms: c.channels })),
  ]);
  const roomName = (id: string) => rooms.find((r) => r.id === id)?.name ?? id;
  const hookName = (id: string) => hooks.find((h) => h.id === id)?.name ?? id;
  hooksBody.replaceChildren(
    ...hooks.map((h) => {
      const tr = document.createElement('tr');
      tr.dataset.hook = h.id;
      const what = h.kind === 'outgoing' ? `${h.url ?? ''}${h.triggerWords && h.triggerWords.length > 0 ? ` on ${h.triggerWords.join(', ')}` : ' on every message'}` : 'its secret URL';
      const action = document.createElement('td');
      if (h.revoked) action.textContent = 'revoked';
      else {
        const b = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Revoke', className: 'secondary' });
        b.addEventListener('click', () => {
          api('DELETE', `/api/hooks/${h.id}`).then(() => action.replaceChildren('revoked'), say);
        });
        action.append(b);
      }
      tr.append(cell(h.name), cell(h.kind), cell(roomName(h.roomId)), cell(what), action);
      return tr;
    }),
  );
  failedBody.replaceChildren(
    ...failed.map((f) => {
      const tr = document.createElement('tr');
      tr.dataset.delivery = f.id;
      tr.append(cell(new Date(f.at).toLocaleString()), cell(hookName(f.hookId)), cell(roomName(f.roomId)), cell(String(f.attempts)), cell(f.lastError));
      return tr;
    }),
  );
  document.getElementById('no-failed')!.hidden = failed.length > 0;
}
