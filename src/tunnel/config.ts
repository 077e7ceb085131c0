// Tunnel settings, read once from the environment and validated here, at the boundary.
// Every setting has our TUNNEL_* name; the 2015 article's COMPOSE_* names are accepted as
// aliases so an existing deployment moves over without renaming its config vars.
import ssh2 from 'ssh2';
import { z } from 'zod';

/** The user the article's hosted RethinkDB (Compose) gave every SSH portal. */
const ARTICLE_SSH_USER = 'compose';

/** Our name for each setting, and the article's alias where it had one. */
const SETTINGS = {
  sshHost: ['TUNNEL_SSH_HOST', 'COMPOSE_SSH_PUBLIC_HOSTNAME'],
  sshPort: ['TUNNEL_SSH_PORT', 'COMPOSE_SSH_PUBLIC_PORT'],
  sshUser: ['TUNNEL_SSH_USER'],
  sshKey: ['TUNNEL_SSH_KEY', 'COMPOSE_SSH_KEY'],
  sshKeyPassphrase: ['TUNNEL_SSH_KEY_PASSPHRASE'],
  hostFingerprints: ['TUNNEL_SSH_HOST_FINGERPRINT'],
  insecureSkipHostKeyCheck: ['TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK'],
  remoteHosts: ['TUNNEL_REMOTE_HOSTS', 'COMPOSE_RETHINKDB_INTERNAL_IPS'],
  remotePort: ['TUNNEL_REMOTE_PORT'],
  localPort: ['TUNNEL_LOCAL_PORT'],
  dyno: ['DYNO'],
} as const satisfies Record<string, readonly string[]>;

type Field = keyof typeof SETTINGS;

export type Env = Readonly<Record<string, string | undefined>>;

/** True when the environment asks for a tunnel at all (the script makes the same test). */
export function tunnelRequested(env: Env): boolean {
  return SETTINGS.sshHost.some((name) => (env[name] ?? '').trim() !== '');
}

const port = (min: number) =>
  z.coerce
    .number({ error: 'must be a port number' })
    .int('must be a whole number')
    .min(min, `must be between ${min} and 65535`)
    .max(65535, `must be between ${min} and 65535`);

const flag = z
  .enum(['1', 'true', 'yes', '0', 'false', 'no', ''], { error: 'must be 1/true/yes or 0/false/no' })
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

// `ssh-keygen -lf` prints SHA256:<43 base64 chars>; a trailing '=' pad is tolerated.
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

const schema = z
  .object({
    sshHost: z.string({ error: 'is required' }).trim().min(1, 'is required'),
    sshPort: port(1).default(22),
    sshUser: z.string().trim().min(1, 'must not be empty').default(ARTICLE_SSH_USER),
    sshKey: z
      .string({ error: 'is required (the private key itself, not a path to it)' })
      .transform(normalizeKey)
      .pipe(z.string().min(1, 'is required (the private key itself, not a path to it)')),
    sshKeyPassphrase: z.string().optional(),
    hostFingerprints: z
      .string()
      .optional()
      .transform((v) => splitList(v ?? '').map((f) => f.replace(/=$/, '')))
      .refine((list) => list.every((f) => FINGERPRINT.test(f)), {
        message: 'must be SHA256:<base64>, as `ssh-keygen -lf` prints it (several may be separated by spaces or commas)',
      }),
    insecureSkipHostKeyCheck: flag.default(false),
    remoteHosts: z
      .string({ error: 'is required (the database nodes\' addresses as the SSH host sees them)' })
      .transform(splitList)
      .pipe(z.array(z.string()).min(1, 'must list at least one address')),
    remotePort: port(1).default(28015),
    // 0 lets the OS choose (tests); production keeps the driver's default 28015.
    localPort: port(0).default(28015),
    dyno: z.string().optional().transform(dynoNumber),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.hostFingerprints.length === 0 && !cfg.insecureSkipHostKeyCheck) {
      ctx.addIssue({
        code: 'custom',
        path: ['hostFingerprints'],
        message:
          "is required: the SSH server's host key fingerprint (e.g. `ssh-keyscan -p PORT HOST | ssh-keygen -lf -`, " +
          'checked against what your provider publishes). Setting TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK=1 instead ' +
          'connects without verifying whom you are talking to',
      });
    }
    const key = ssh2.utils.parseKey(cfg.sshKey, cfg.sshKeyPassphrase);
    if (key instanceof Error) {
      // Never echo the key: the message only says what is wrong with it.
      const needsPassphrase = /passphrase/i.test(key.message);
      if (needsPassphrase && cfg.sshKeyPassphrase !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['sshKeyPassphrase'], message: 'does not decrypt the SSH key' });
      } else {
        ctx.addIssue({
          code: 'custom',
          path: ['sshKey'],
          message: needsPassphrase
            ? 'is encrypted: set TUNNEL_SSH_KEY_PASSPHRASE'
            : `is not a private key in a format ssh2 reads (OpenSSH or PEM): ${key.message}`,
        });
      }
    } else if (!key.isPrivateKey()) {
      ctx.addIssue({ code: 'custom', path: ['sshKey'], message: 'is a public key; the private key is needed' });
    }
  });

export type TunnelConfig = z.infer<typeof schema>;

export class TunnelConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid tunnel settings:\n  ${problems.join('\n  ')}`);
    this.name = 'TunnelConfigError';
  }
}

/** Reads the tunnel settings; throws TunnelConfigError naming each wrong setting. */
export function loadTunnelConfig(env: Env): TunnelConfig {
  const raw: Partial<Record<Field, string>> = {};
  const source: Partial<Record<Field, string>> = {};
  for (const field of Object.keys(SETTINGS) as Field[]) {
    // Our name wins over the article's alias when both are set.
    const name = SETTINGS[field].find((n) => env[n] !== undefined && env[n] !== '');
    if (name !== undefined) {
      raw[field] = env[name];
      source[field] = name;
    }
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = issue.path[0] as Field | undefined;
    const name = field === undefined ? 'tunnel settings' : (source[field] ?? SETTINGS[field].join(' or '));
    return `${name} ${issue.message}`;
  });
  throw new TunnelConfigError(problems);
}

/** `web.3` → 3, `release.1234` → 1234; undefined when absent (the tunnel then picks at random). */
function dynoNumber(dyno: string | undefined): number | undefined {
  const m = /(\d+)$/.exec(dyno ?? '');
  return m ? Number(m[1]) : undefined;
}

function splitList(value: string): string[] {
  return value.split(/[\s,]+/).filter((s) => s !== '');
}

// Some platforms' dashboards turn a multi-line value into one line with literal "\n"s, or
// add a trailing newline or CR; give ssh2 the key the user meant.
function normalizeKey(key: string): string {
  let k = key.trim();
  if (!k.includes('\n') && k.includes('\\n')) k = k.replace(/\\n/g, '\n');
  return k.replace(/\r\n/g, '\n') + (k === '' ? '' : '\n');
}
