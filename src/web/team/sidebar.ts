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

  render(rooms: Iterable<WireRoom>, current: string | undefined, dmName: (room: WireRoom) => string, presence: (room: WireRoom) => 'online' | 'away' | 'offline' | undefined = () => undefined): void {
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
            a.className = `room-link${r.id === current ? ' current' : ''}${r.archived ? ' archived' : ''}${r.level === 'none' ? ' muted' : ''}`;
            const name = document.createElement('span');
            name.className = 'room-name';
            name.textContent = kind === 'dm' ? dmName(r) : `${kind === 'channel' ? '#' : '🔒'} ${r.name}`;
            const state = kind === 'dm' ? presence(r) : undefined;
            if (state) {
              const dot = Object.assign(document.createElement('span'), { className: `presence ${state}`, title: state });
              dot.setAttribute('aria-label', state);
              name.prepend(dot);
            }
            a.append(name);
            // A muted room shows no badge; a mention shows apart from the unread count.
            if (r.id !== current && r.level !== 'none') {
              const count = (n: number) => (n >= 100 ? '99+' : String(n));
              if (r.mentions > 0) {
                const badge = Object.assign(document.createElement('span'), { className: 'badge mention', textContent: `@${count(r.mentions)}` });
                badge.title = `${r.mentions} asking you to look`;
                a.append(badge);
              }
              if (r.unread > 0) a.append(Object.assign(document.createElement('span'), { className: 'badge', textContent: count(r.unread) }));
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
