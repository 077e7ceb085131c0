// The admin page: the workspace's name and registration mode, people's roles and whether
// they are disabled, and which channels are default. Everything goes through the same /api
// routes (and their rules: an admin cannot change an owner, the last owner stays).
import { api } from '../team/api.js';

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

Promise.all([workspace(), people(), channels()]).catch(say);
