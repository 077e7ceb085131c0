// The sidebar: channels, private groups and DMs, each with its unread badge; the open room
// marked. Drawn from the rooms the socket's watch reports (data in, DOM out).
import type { WireRoom } from '../../chat/wire.js';

export interface SidebarEvents {
  open(roomId: string): void;
}

const SECTIONS: Array<[WireRoom['kind'], string]> = [
  ['channel', 'channels'],
  ['group', 'groups'],
  ['dm', 'dms'],
];

export class Sidebar {
  constructor(
    private readonly root: HTMLElement,
    private readonly events: SidebarEvents,
  ) {}

  render(rooms: Iterable<WireRoom>, current: string | undefined, dmName: (room: WireRoom) => string): void {
    const all = [...rooms];
    for (const [kind, id] of SECTIONS) {
      const list = this.root.querySelector<HTMLUListElement>(`#${id}`);
      if (!list) continue;
      list.replaceChildren(
        ...all
          .filter((r) => r.kind === kind)
          .sort((a, b) => (kind === 'dm' ? dmName(a) : a.name).localeCompare(kind === 'dm' ? dmName(b) : b.name))
          .map((r) => {
            const li = document.createElement('li');
            const a = document.createElement('a');
            a.href = `/?room=${encodeURIComponent(r.id)}`;
            a.dataset.room = r.id;
            a.className = `room-link${r.id === current ? ' current' : ''}${r.archived ? ' archived' : ''}`;
            const name = document.createElement('span');
            name.className = 'room-name';
            name.textContent = kind === 'dm' ? dmName(r) : `${kind === 'channel' ? '#' : '🔒'} ${r.name}`;
            a.append(name);
            if (r.unread > 0 && r.id !== current) {
              const badge = document.createElement('span');
              badge.className = 'badge';
              badge.textContent = r.unread >= 100 ? '99+' : String(r.unread);
              a.append(badge);
            }
            a.addEventListener('click', (e) => {
              e.preventDefault();
              this.events.open(r.id);
            });
            li.append(a);
            return li;
          }),
      );
    }
  }
}
