// Password hashing: argon2id with OWASP's minimum parameters for it (m = 19 MiB, t = 2, p = 1;
// OWASP Password Storage Cheat Sheet). A verify against a hash made with weaker parameters
// still works; `needsRehash` says when to store a new one.
import argon2 from 'argon2';

export const ARGON2_PARAMS = Object.freeze({ type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 });

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, ARGON2_PARAMS);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

export function needsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, ARGON2_PARAMS);
}

// A log-in for a name that does not exist verifies against this hash, so that it takes as long
// as a wrong password for a name that does.
let dummy: Promise<string> | undefined;
export async function verifyNothing(password: string): Promise<false> {
  dummy ??= hashPassword('no such account: a fixed, unguessable placeholder');
  await verifyPassword(await dummy, password);
  return false;
}
