// Who is online and who is typing, as the page shows them. The page asks the server about
// the people it shows (DM partners, the open room's members), tells it when it is away (the
// tab hidden for a minute, or no input for five), and sends a typing signal at most every
// few seconds while the composer is being typed in; someone else's signal shows for a few
// seconds.
export type PresenceState = 'online' | 'away' | 'offline';

const AWAY_HIDDEN_MS = 60_000;
const AWAY_IDLE_MS = 5 * 60_000;
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;

export class PresenceView {
  private readonly states = new Map<string, PresenceState>();
  private asked: string[] = [];
  private away = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastTyping = 0;
  private readonly typists = new Map<string, { name: string; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly write: (frame: unknown) => void,
    private readonly changed: () => void,
    private readonly typingShown: (names: string[]) => void,
  ) {
    document.addEventListener('visibilitychange', () => this.activity());
    for (const ev of ['pointerdown', 'keydown', 'focus']) window.addEventListener(ev, () => this.activity(), { passive: true });
    this.activity();
  }

  stateOf(userId: string): PresenceState | undefined {
    return this.states.get(userId);
  }

  /** Asks about these people (the socket (re)opened, or the people shown changed). */
  want(ids: Iterable<string>): void {
    const next = [...new Set(ids)].sort().slice(0, 500);
    if (next.join() === this.asked.join()) return;
    this.asked = next;
    this.write({ type: 'presence', users: next });
  }

  /** The socket (re)opened: ask again, and say whether this page is away. */
  reopened(): void {
    if (this.asked.length > 0) this.write({ type: 'presence', users: this.asked });
    if (this.away) this.write({ type: 'away', away: true });
  }

  receive(users: Record<string, PresenceState>): void {
    for (const [id, state] of Object.entries(users)) this.states.set(id, state);
    this.changed();
  }

  /** The user typed in the composer of this room. */
  typed(room: string): void {
    const now = Date.now();
    if (now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.write({ type: 'typing', room });
  }

  /** Someone is typing in the room shown. */
  typing(userId: string, name: string): void {
    const held = this.typists.get(userId);
    if (held) clearTimeout(held.timer);
    this.typists.set(userId, { name, timer: setTimeout(() => this.stopped(userId), TYPING_SHOWN_MS) });
    this.typingShown([...this.typists.values()].map((t) => t.name));
  }

  /** Their message came, or another room is shown: they are no longer typing here. */
  stopped(userId?: string): void {
    for (const [id, t] of this.typists) {
      if (userId !== undefined && id !== userId) continue;
      clearTimeout(t.timer);
      this.typists.delete(id);
    }
    this.typingShown([...this.typists.values()].map((t) => t.name));
  }

  private activity(): void {
    clearTimeout(this.timer);
    this.setAway(false);
    this.timer = setTimeout(() => this.setAway(true), document.hidden ? AWAY_HIDDEN_MS : AWAY_IDLE_MS);
  }

  private setAway(on: boolean): void {
    if (on === this.away) return;
    this.away = on;
    this.write({ type: 'away', away: on });
  }
}
