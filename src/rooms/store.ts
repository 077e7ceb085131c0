// Every query on rooms and memberships. Channel names are unique (a claim per normalised
// name); private groups' names are not, so that no name can tell that a group exists. A DM
// between a set of people is one room (a claim per sorted set).
import { randomUUID } from 'node:crypto';
import { r, type RDatum } from 'rethinkdb-ts';
import { z } from 'zod';
import type { Pool } from '../db/pool.js';
import { CLAIMS, MEMBERS, MESSAGES, ROOMS } from '../db/schema.js';
import { memberId, memberRow, normalRoomName, roomRow, type Member, type NotifyLevel, type Room, type RoomKind } from './schema.js';

export class RoomNameTakenError extends Error {
  override name = 'RoomNameTakenError';
}

const inserted = z.object({ inserted: z.number() });

export interface RoomStore {
  room(id: string): Promise<Room | undefined>;
  create(r: { kind: RoomKind; name: string; topic: string; ownerId: string | null; announcement?: boolean; id?: string; createdAt?: Date }): Promise<Room>;
  /** the DM of exactly these people, made if it does not exist */
  dm(userIds: string[]): Promise<Room>;
  update(id: string, patch: Partial<Pick<Room, 'name' | 'topic' | 'archived' | 'announcement' | 'isDefault' | 'ownerId'>>): Promise<Room>;
  delete(id: string): Promise<void>;
  member(roomId: string, userId: string): Promise<Member | undefined>;
  addMember(roomId: string, userId: string): Promise<boolean>;
  removeMember(roomId: string, userId: string): Promise<boolean>;
  members(roomId: string): Promise<Member[]>;
  /** the rooms a user belongs to */
  roomsOf(userId: string): Promise<Room[]>;
  /** every room of a kind */
  byKind(kind: RoomKind): Promise<Room[]>;
  /** true when the two users share a room */
  share(a: string, b: string): Promise<boolean>;
  /** Moves a member's read position forward to (sent, id); never back. */
  setRead(roomId: string, userId: string, sent: Date, id: string): Promise<void>;
  /** After a read position: the messages (unread) and those asking the member to look
   *  (mentions), each counted by index up to `cap`, never the whole history. */
  counts(roomId: string, member: Member | undefined, cap?: number): Promise<Counts>;
  /** Every room of the user with their membership and counts: the sidebar, in one query. */
  sidebar(userId: string, opts?: { cap?: number; counts?: boolean }): Promise<Array<{ room: Room; member: Member } & Counts>>;
  /** how many members the room has */
  memberCount(roomId: string): Promise<number>;
  /** Sets (or with null clears, back to the default) what the member is told of. */
  setLevel(roomId: string, userId: string, level: NotifyLevel | null): Promise<boolean>;
  /** Every membership change, on every process: added, removed, or a read position moved. */
  memberChanges(): Promise<{ close(): Promise<void>; [Symbol.asyncIterator](): AsyncIterator<MemberChange> }>;
}

export type MemberChange = { kind: 'added' | 'removed' | 'read' | 'level'; member: Member };

export interface Counts {
  unread: number;
  mentions: number;
}

const countsRow = z.object({ unread: z.number(), mentions: z.number() });

export function createRoomStore(pool: Pool, db: string): RoomStore {
  const t = (name: string) => r.db(db).table(name);
  const parse = (row: unknown) => (row === null ? undefined : roomRow.parse(row));

  async function claim(key: string, roomId: string): Promise<string | undefined> {
    const res = inserted.parse(await pool.run(t(CLAIMS).insert({ id: key, roomId }, { conflict: 'error' })));
    if (res.inserted === 1) return undefined;
    const existing: unknown = await pool.run(t(CLAIMS).get(key));
    return z.object({ roomId: z.string() }).parse(existing).roomId;
  }
  const unclaim = (key: string, roomId: string) => pool.run(t(CLAIMS).get(key).replace((c: RDatum) => r.branch(c('roomId').eq(roomId), null, c)));
  const nameKey = (name: string) => `channel:${normalRoomName(name)}`;

  /** The counts after a member's read position (a ReQL term, so that many run in one query):
   *  messages of the room's own history, and those naming the member or the whole room. */
  function countsTerm(roomId: RDatum | string, userId: RDatum | string, member: RDatum | undefined, cap: number) {
    const read = member ?? r.expr({});
    const at = r.branch(read.hasFields('readSent', 'readId'), r.expr([roomId, read('readSent'), read('readId')]), r.expr([roomId, r.minval]));
    const after = (index: string, prefix: unknown[]) =>
      t(MESSAGES).between(r.branch(read.hasFields('readSent', 'readId'), r.expr([...prefix, read('readSent'), read('readId')]), r.expr([...prefix, r.minval])), [...prefix, r.maxval], { index, leftBound: 'open' }).limit(cap).count();
    return {
      unread: t(MESSAGES).between(at, [roomId, r.maxval], { index: 'room_main', leftBound: 'open' }).limit(cap).count(),
      mentions: r.add(after('attention', [userId, roomId]), after('room_all', [roomId, true])).do((n: RDatum) => r.branch(n.gt(cap), cap, n)),
    };
  }

  async function room(id: string): Promise<Room | undefined> {
    return parse(await pool.run(t(ROOMS).get(id)));
  }

  return {
    room,

    async create(spec) {
      const id = spec.id ?? randomUUID();
      // A name claimed for this very id (a run cut short before the insert) is this room's.
      const holder = spec.kind === 'channel' ? await claim(nameKey(spec.name), id) : undefined;
      if (holder !== undefined && holder !== id) throw new RoomNameTakenError(`there is already a channel named ${spec.name}`);
      const row: Room = { id, kind: spec.kind, name: spec.name, topic: spec.topic, ownerId: spec.ownerId, createdAt: spec.createdAt ?? new Date(), archived: false, announcement: spec.announcement ?? false, isDefault: false };
      await pool.run(t(ROOMS).insert(row, { conflict: 'error' }));
      return row;
    },

    async dm(userIds) {
      const people = [...new Set(userIds)].sort();
      const key = `dm:${people.join(',')}`;
      const id = randomUUID();
      const existing = await claim(key, id);
      if (existing) {
        const found = await room(existing);
        if (found) return found;
      }
      const row: Room = { id, kind: 'dm', name: '', topic: '', ownerId: null, createdAt: new Date(), archived: false, announcement: false, isDefault: false };
      await pool.run(t(ROOMS).insert(row, { conflict: 'replace' }));
      for (const u of people) await pool.run(t(MEMBERS).insert({ id: memberId(id, u), roomId: id, userId: u, joinedAt: new Date() }, { conflict: 'update' }));
      return row;
    },

    async update(id, patch) {
      const before = await room(id);
      if (!before) throw new Error('no such room');
      if (patch.name !== undefined && before.kind === 'channel' && normalRoomName(patch.name) !== normalRoomName(before.name)) {
        if (await claim(nameKey(patch.name), id)) throw new RoomNameTakenError(`there is already a channel named ${patch.name}`);
        await unclaim(nameKey(before.name), id);
      }
      await pool.run(t(ROOMS).get(id).update(patch));
      return { ...before, ...patch };
    },

    async delete(id) {
      const before = await room(id);
      if (!before) return;
      await pool.run(t(MEMBERS).getAll(id, { index: 'roomId' }).delete());
      await pool.run(t(ROOMS).get(id).delete());
      if (before.kind === 'channel') await unclaim(nameKey(before.name), id);
    },

    async member(roomId, userId) {
      const row: unknown = await pool.run(t(MEMBERS).get(memberId(roomId, userId)));
      return row === null ? undefined : memberRow.parse(row);
    },

    async addMember(roomId, userId) {
      const res = inserted.parse(await pool.run(t(MEMBERS).insert({ id: memberId(roomId, userId), roomId, userId, joinedAt: new Date() }, { conflict: 'update' })));
      return res.inserted === 1;
    },

    async removeMember(roomId, userId) {
      const res = z.object({ deleted: z.number() }).parse(await pool.run(t(MEMBERS).get(memberId(roomId, userId)).delete()));
      return res.deleted === 1;
    },

    async members(roomId) {
      const rows: unknown[] = await pool.run(t(MEMBERS).getAll(roomId, { index: 'roomId' }));
      return rows.map((m) => memberRow.parse(m));
    },

    async roomsOf(userId) {
      const rows: unknown[] = await pool.run(t(MEMBERS).getAll(userId, { index: 'userId' }).eqJoin('roomId', t(ROOMS)).map((j: RDatum) => j('right')));
      return rows.map((x) => roomRow.parse(x));
    },

    async byKind(kind) {
      const rows: unknown[] = await pool.run(t(ROOMS).getAll(kind, { index: 'kind' }));
      return rows.map((x) => roomRow.parse(x));
    },

    async setRead(roomId, userId, sent, id) {
      await pool.run(
        t(MEMBERS)
          .get(memberId(roomId, userId))
          .update((m: RDatum) =>
            r.branch(
              m.hasFields('readSent').not().or(m('readSent').lt(sent)).or(m('readSent').eq(sent).and(m('readId').lt(id))),
              { readSent: sent, readId: id },
              {},
            ),
          ),
      );
    },

    async counts(roomId, member, cap = 100) {
      const userId = member?.userId ?? '';
      return countsRow.parse(await pool.run(r.expr(member ?? null).do((m: RDatum) => countsTerm(roomId, userId, r.branch(m.eq(null), r.expr({}), m), cap))));
    },

    async sidebar(userId, { cap = 100, counts = true } = {}) {
      const rows: unknown[] = await pool.run(
        t(MEMBERS)
          .getAll(userId, { index: 'userId' })
          .eqJoin('roomId', t(ROOMS))
          .map((j: RDatum) => r.expr({ room: j('right'), member: j('left') }).merge(counts ? countsTerm(j('left')('roomId'), userId, j('left'), cap) : { unread: 0, mentions: 0 })),
      );
      const row = z.object({ room: roomRow, member: memberRow }).and(countsRow);
      return rows.map((x) => row.parse(x));
    },

    async memberCount(roomId) {
      return Number(await pool.run(t(MEMBERS).getAll(roomId, { index: 'roomId' }).count()));
    },

    async setLevel(roomId, userId, level) {
      const res = z.object({ replaced: z.number(), unchanged: z.number(), skipped: z.number() }).parse(
        await pool.run(t(MEMBERS).get(memberId(roomId, userId)).replace((m: RDatum) => r.branch(m.eq(null), null, level === null ? m.without('level') : m.merge({ level })))),
      );
      return res.replaced + res.unchanged > 0;
    },

    async memberChanges() {
      const cursor = await pool.run(t(MEMBERS).changes({ squash: false }));
      const change = z.object({ old_val: memberRow.nullish(), new_val: memberRow.nullish() });
      return {
        close: () => cursor.close(),
        async *[Symbol.asyncIterator]() {
          for await (const raw of cursor as AsyncIterable<unknown>) {
            const c = change.parse(raw);
            if (c.new_val && !c.old_val) yield { kind: 'added' as const, member: c.new_val };
            else if (c.old_val && !c.new_val) yield { kind: 'removed' as const, member: c.old_val };
            else if (c.new_val && c.old_val && c.new_val.readId !== c.old_val.readId) yield { kind: 'read' as const, member: c.new_val };
            else if (c.new_val && c.old_val && c.new_val.level !== c.old_val.level) yield { kind: 'level' as const, member: c.new_val };
          }
        },
      };
    },

    async share(a, b) {
      const mine: unknown[] = await pool.run(t(MEMBERS).getAll(a, { index: 'userId' })('roomId'));
      if (mine.length === 0) return false;
      const count = await pool.run(t(MEMBERS).getAll(...mine.map((roomId) => memberId(String(roomId), b))).count());
      return Number(count) > 0;
    },
  };
}
