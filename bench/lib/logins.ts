// The log-in phase of `npm run bench`: how many log-ins per second one app process takes
// (each one an argon2id check), and what its chat traffic sees meanwhile. Chat clients send
// at a steady rate; latency is measured for a span without log-ins, then for a span with
// `concurrency` log-in loops hammering POST /api/auth/login on the same process.
import { randomUUID } from 'node:crypto';
import { LoadClient } from './load-client.js';
import { Samples, summarize, roundSummary, type Summary } from './stats.js';

export interface LoginPhaseResult {
  loginsPerSecond: number;
  loginErrors: number;
  concurrency: number;
  chatLatencyWithoutLoginsMs: Summary;
  chatLatencyDuringLoginsMs: Summary;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function csrfAndCookie(base: string): Promise<{ csrf: string; cookie: string }> {
  const res = await fetch(`${base}/api/auth/csrf`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const { csrf } = (await res.json()) as { csrf: string };
  return { csrf, cookie };
}

/** POSTs JSON with a CSRF token (one fetched for the purpose unless given: a token made
 *  before log-in is bound to no session, so one loop can keep using it). */
async function post(base: string, path: string, body: unknown, token?: { csrf: string; cookie: string }): Promise<number> {
  const { csrf, cookie } = token ?? (await csrfAndCookie(base));
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, cookie }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}

export async function loginPhase(base: string, opts: { seconds: number; concurrency: number; clients: number; rooms: number; rate: number }): Promise<LoginPhaseResult> {
  const username = `bench${randomUUID().slice(0, 8)}`;
  const password = 'a benchmark password, long enough';
  const made = await post(base, '/api/auth/signup', { username, displayName: 'Bench', email: `${username}@example.test`, password });
  if (made !== 201) throw new Error(`could not make the benchmark account (${made}): start the bench on a fresh database`);

  const sentAt = new Map<string, number>();
  let current: Samples | undefined;
  const clients: LoadClient[] = [];
  for (let i = 0; i < opts.clients; i++) {
    clients.push(
      new LoadClient({
        urls: [base],
        room: `login-bench-${i % opts.rooms}`,
        onMessage: (m, at, live) => {
          const t = sentAt.get(m.id);
          if (live && t !== undefined) current?.push(at - t);
        },
      }),
    );
  }
  try {
    await Promise.all(clients.map((c) => c.start()));
    const senders = clients.slice(0, opts.rooms);
    const span = async (samples: Samples, during?: () => Promise<void>) => {
      current = samples;
      const end = performance.now() + opts.seconds * 1000;
      const storm = during?.();
      let n = 0;
      const t0 = performance.now();
      while (performance.now() < end) {
        const due = Math.floor(((performance.now() - t0) / 1000) * opts.rate);
        for (; n < due; n++) {
          const id = randomUUID();
          sentAt.set(id, performance.now());
          senders[n % senders.length].send(id, `login bench ${n}`);
        }
        await sleep(5);
      }
      await storm;
      await sleep(500);
      current = undefined;
    };
    const quiet = new Samples();
    await span(quiet);
    const loud = new Samples();
    let logins = 0;
    let errors = 0;
    let loginSeconds = 0;
    await span(loud, async () => {
      const start = performance.now();
      const end = start + opts.seconds * 1000;
      await Promise.all(
        Array.from({ length: opts.concurrency }, async () => {
          const token = await csrfAndCookie(base);
          while (performance.now() < end) {
            const status = await post(base, '/api/auth/login', { login: username, password }, token);
            if (status === 200) logins++;
            else errors++;
          }
        }),
      );
      loginSeconds = (performance.now() - start) / 1000;
    });
    return {
      loginsPerSecond: Math.round((logins / loginSeconds) * 10) / 10,
      loginErrors: errors,
      concurrency: opts.concurrency,
      chatLatencyWithoutLoginsMs: roundSummary(summarize(quiet.values())),
      chatLatencyDuringLoginsMs: roundSummary(summarize(loud.values())),
    };
  } finally {
    for (const c of clients) c.close();
  }
}
