// What the page remembers in this browser: the display name typed, and the ids of messages
// sent from here (to mark them as one's own). Private browsing may refuse storage: then
// nothing is remembered, and nothing breaks.
function get<T>(key: string, fallback: T): T {
  try {
    const v = localStorage.getItem(key);
    return v === null ? fallback : (JSON.parse(v) as T);
  } catch {
    return fallback;
  }
}

function set(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // private mode or full: not remembered
  }
}

export const savedName = {
  get: () => get<string>('chat.name', ''),
  set: (name: string) => set('chat.name', name),
};

/** Ids of messages sent from this browser. */
export class OwnIds {
  private ids: string[] = get<string[]>('chat.own', []);
  private readonly set = new Set(this.ids);

  has(id: string): boolean {
    return this.set.has(id);
  }

  add(id: string): void {
    this.set.add(id);
    this.ids.push(id);
    if (this.ids.length > 1000) this.ids = this.ids.slice(-500);
    set('chat.own', this.ids);
  }
}
