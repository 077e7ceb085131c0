// The admin page: the workspace's name and registration mode, people's roles and whether
// they are disabled, which channels are default, and the deployment's status. Everything goes
// through the same /api routes (and their rules: an admin cannot change an owner, the last
// owner stays).
import { api } from '../team/api.js';
import type { Status } from '../../ops/status.js';
import { hooksSection } from './hooks.js';

interface User {
  id: string;
  username: string;
  displayName: string;
  role: string;
  disabled?: boolean;
}
interface Channel {
  id: string;
  name: string;
  isDefault: boolean;
}

const notice = document.getElementById('notice')!;
const say = (e: unknown) => {
  notice.textContent = e instanceof Error ? e.message : String(e);
  notice.hidden = false;
};

async function workspace(): Promise<void> {
  const form = document.getElementById('workspace') as HTMLFormElement;
  const { workspace: w } = await api<{ workspace: { name: string; registration: string } }>('GET', '/api/workspace');
  (form.elements.namedItem('name') as HTMLInputElement).value = w.name;
  (form.elements.namedItem('registration') as HTMLSelectElement).value = w.registration;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = (form.elements.namedItem('name') as HTMLInputElement).value;
    const registration = (form.elements.namedItem('registration') as HTMLSelectElement).value;
    api('PATCH', '/api/workspace', { name, registration }).then(() => {
      notice.hidden = true;
      form.dataset.saved = registration;
    }, say);
  });
}

async function people(): Promise<void> {
  const body = document.querySelector('#users tbody')!;
  const { users } = await api<{ users: User[] }>('GET', '/api/users');
  body.replaceChildren(
    ...users.map((u) => {
      const tr = document.createElement('tr');
      tr.dataset.user = u.username;
      const name = document.createElement('td');
      name.textContent = `${u.displayName} (@${u.username})`;
      const role = document.createElement('select');
      for (const r of ['owner', 'admin', 'member', 'guest']) role.append(Object.assign(document.createElement('option'), { value: r, textContent: r }));
      role.value = u.role;
      role.name = 'role';
      role.addEventListener('change', () => {
        api('PATCH', `/api/users/${u.id}`, { role: role.value }).then(() => (tr.dataset.role = role.value), (e: unknown) => {
          role.value = u.role;
          say(e);
        });
      });
      const disabled = Object.assign(document.createElement('input'), { type: 'checkbox', checked: Boolean(u.disabled), name: 'disabled' });
      disabled.addEventListener('change', () => {
        api('PATCH', `/api/users/${u.id}`, { disabled: disabled.checked }).catch((e: unknown) => {
          disabled.checked = !disabled.checked;
          say(e);
        });
      });
      const cells = [name, document.createElement('td'), document.createElement('td')];
      cells[1].append(role);
      cells[2].append(disabled);
      tr.append(...cells);
      return tr;
    }),
  );
}

async function channels(): Promise<void> {
  const body = document.querySelector('#channels tbody')!;
  const { channels: list } = await api<{ channels: Channel[] }>('GET', '/api/channels');
  body.replaceChildren(
    ...list.map((c) => {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = `#${c.name}`;
      const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: c.isDefault, name: 'default' });
      box.addEventListener('change', () => {
        api('PATCH', `/api/rooms/${c.id}`, { isDefault: box.checked }).catch((e: unknown) => {
          box.checked = !box.checked;
          say(e);
        });
      });
      const td = document.createElement('td');
      td.append(box);
      tr.append(name, td);
      return tr;
    }),
  );
}

/** A table of text cells; the first row is the head. */
function grid(rows: string[][]): HTMLTableElement {
  const table = Object.assign(document.createElement('table'), { className: 'users' });
  rows.forEach((cells, i) => {
    const tr = document.createElement('tr');
    for (const c of cells) tr.append(Object.assign(document.createElement(i === 0 ? 'th' : 'td'), { textContent: c }));
    (i === 0 ? table.createTHead() : table.tBodies[0] ?? table.createTBody()).append(tr);
  });
  return table;
}

/** The status section; a failure to read it is said there, apart from the page's notice. */
async function status(): Promise<void> {
  const box = document.getElementById('status')!;
  let s: Status;
  try {
    s = (await api<{ status: Status }>('GET', '/api/admin/status')).status;
  } catch (e) {
    box.textContent = `The status could not be read: ${e instanceof Error ? e.message : String(e)}`;
    return;
  }
  const heading = (text: string) => Object.assign(document.createElement('h4'), { textContent: text });
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const parts: HTMLElement[] = [
    heading(`Processes (${s.processes.filter((p) => p.alive).length} alive)`),
    grid([['Dyno', 'State', 'Host', 'Up (s)', 'Last beat (s ago)', 'Sockets', 'Feeds', 'Version'], ...s.processes.map((p) => [p.dyno, p.alive ? 'alive' : 'gone', p.host, String(Math.round(p.uptimeSeconds)), String(p.lastBeatSecondsAgo), String(p.sockets), String(p.feeds.openFeeds), p.commit ? `${p.version} (${p.commit})` : p.version])]),
    heading(`Database servers (${s.database.kind})`),
    grid([['Name', 'Version', 'Host', 'Connected to'], ...s.servers.map((v) => [v.name, v.version, v.hostname ?? '', v.connectedTo.join(', ')])]),
    heading('Tables'),
    grid([['Table', 'Shards', 'Replicas', 'Ready', 'Size'], ...s.tables.map((t) => [t.name, String(t.shards.length), String(t.replicas), t.ready ? 'ready' : 'NOT READY', t.rows !== undefined ? `${t.rows} row${t.rows === 1 ? '' : 's'}` : t.dataBytes !== undefined ? mib(t.dataBytes) : ''])]),
    heading(`Issues (${s.issues.length})`),
    ...s.issues.map((i) => Object.assign(document.createElement('p'), { textContent: `${i.critical ? 'Critical: ' : ''}${i.type}: ${i.description}` })),
  ];
  if (s.embedded) parts.push(Object.assign(document.createElement('p'), { textContent: `Embedded data: ${mib(s.embedded.bytes)} in ${s.embedded.dataDir}` }));
  for (const u of s.unavailable) parts.push(Object.assign(document.createElement('p'), { className: 'hint', textContent: `Not known: ${u}` }));
  box.replaceChildren(...parts);
}

document.getElementById('status-refresh')!.addEventListener('click', () => void status());
Promise.all([workspace(), people(), channels(), status(), hooksSection(say)]).catch(say);
