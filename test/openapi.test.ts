// The API's OpenAPI document (GET /api/openapi.json) against the server itself: it lists what
// integrations need; every body and query schema in it is what the server enforces (requests
// built from the document's own required fields and limits are refused, or accepted, as it
// says); every endpoint that needs a sign-in says so and answers 401 without one; errors
// everywhere under /api have one shape; the reference page lists every operation.
import t from 'tap';
import { Agent } from './fixtures/http.js';
import { startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const app = await startApp(t, db);

const owner = new Agent(app.url);
await owner.signup({ username: 'olga' });
const room = (await owner.post('/api/rooms', { kind: 'channel', name: 'general-talk' })).json<{ room: { id: string } }>().room.id;
const message = (await owner.post(`/api/rooms/${room}/messages`, { body: 'hello' })).json<{ message: { id: string } }>().message.id;

interface Schema {
  type?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  maximum?: number;
}
interface Operation {
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: Schema }>;
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, unknown>;
}
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>>; components?: { securitySchemes?: Record<string, unknown> } };

const reply = await new Agent(app.url).get('/api/openapi.json');
const doc = reply.json<Doc>();
const operations = Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ method, path, op })));
/** A concrete URL for a documented path: real ids, so only the checked part can fail. */
const urlOf = (path: string) => path.replace('{id}', room).replace('{messageId}', message).replace('{userId}', 'nobody').replace('{emoji}', 'x').replace(/\{\w+\}/g, 'x');
const errorShape = { error: { code: String, message: String } };

t.test('the document, with what integrations need', async (t) => {
  t.equal(reply.status, 200, 'served without a session');
  t.match(doc.openapi, /^3\./, 'OpenAPI 3');
  t.ok(doc.components?.securitySchemes?.bearer, 'bearer tokens are a security scheme');
  const has = new Set(operations.map((o) => `${o.method.toUpperCase()} ${o.path}`));
  for (const needed of [
    'GET /api/rooms', 'POST /api/rooms', 'GET /api/rooms/{id}/members', 'POST /api/rooms/{id}/members', 'DELETE /api/rooms/{id}/members/{userId}',
    'POST /api/rooms/{id}/messages', 'GET /api/rooms/{id}/messages', 'PATCH /api/rooms/{id}/messages/{messageId}', 'DELETE /api/rooms/{id}/messages/{messageId}',
    'GET /api/users', 'GET /api/users/lookup', 'POST /api/auth/login', 'GET /api/me',
  ]) t.ok(has.has(needed), needed);
});

t.test('every required body field the document names is one the server requires', async (t) => {
  let checked = 0;
  for (const { method, path, op } of operations) {
    const schema = op.requestBody?.content['application/json']?.schema;
    if (!schema?.required?.length) continue;
    const r = await owner.request(method.toUpperCase(), urlOf(path), { json: {}, headers: { 'x-csrf-token': await owner.csrf() } });
    t.equal(r.status, 400, `${method} ${path} refuses {}`);
    t.match(r.json(), { error: { code: 'invalid' } }, 'in the one error shape');
    for (const field of schema.required) t.match(r.json<{ error: { message: string } }>().error.message, new RegExp(`\\b${field}\\b`), `and names ${field}`);
    checked++;
  }
  t.ok(checked >= 6, `${checked} operations with a required body checked`);
});

t.test('a documented limit is the enforced limit', async (t) => {
  const op = doc.paths['/api/rooms/{id}/messages'].get;
  const max = op.parameters?.find((p) => p.name === 'limit')?.schema?.maximum;
  t.type(max, 'number', 'the page size has a documented maximum');
  const at = await owner.get(`/api/rooms/${room}/messages?limit=${max}`);
  t.equal(at.status, 200, 'at the maximum: a page');
  const past = await owner.get(`/api/rooms/${room}/messages?limit=${max! + 1}`);
  t.equal(past.status, 400, 'one past it: refused');
  t.match(past.json(), { error: { code: 'invalid', message: /limit/ } });
});

t.test('without a session or a token, every protected endpoint answers 401 in the one shape', async (t) => {
  const stranger = new Agent(app.url);
  const csrf = await stranger.csrf();
  let checked = 0;
  for (const { method, path, op } of operations) {
    if (op.security && op.security.length === 0) continue;
    t.ok(op.responses['401'], `${method} ${path} documents its 401`);
    const r = await stranger.request(method.toUpperCase(), urlOf(path), { json: method === 'get' ? undefined : {}, headers: { 'x-csrf-token': csrf } });
    t.equal(r.status, 401, `${method} ${path}`);
    t.match(r.json(), errorShape);
    checked++;
  }
  t.ok(checked >= 20, `${checked} endpoints checked`);
});

t.test('errors under /api have one shape, unknown paths included; the reference page lists every operation', async (t) => {
  const unknown = await owner.get('/api/no-such-thing');
  t.equal(unknown.status, 404);
  t.match(unknown.json(), { error: { code: 'not_found', message: String } });
  const lookup = await owner.get('/api/users/lookup?username=olga');
  t.match(lookup.json(), { user: { username: 'olga' } }, 'a user looked up by name');
  t.equal((await owner.get('/api/users/lookup?username=nobody-here')).status, 404, 'and nobody is not found');
  t.equal((await owner.get('/api/users/lookup')).status, 400, 'the lookup needs an id or a name');
  const page = await new Agent(app.url).get('/api/docs');
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type') ?? '', /text\/html/);
  for (const { path } of operations) t.ok(page.text.includes(path), `the page shows ${path}`);
});

t.test("each operation's documented token scope is the one enforced", async (t) => {
  const made = await owner.post('/api/tokens', { name: 'reader', scopes: ['read'] });
  t.equal(made.status, 201, 'a read-only token');
  const bearer = { authorization: `Bearer ${made.json<{ token: string }>().token}` };
  let checked = 0;
  for (const { method, path, op } of operations) {
    const scope = (op as Operation & { 'x-scope'?: string })['x-scope'];
    if (op.security && op.security.length === 0) continue;
    t.ok(scope === 'read' || scope === 'post' || scope === 'manage' || scope === 'session-only', `${method} ${path} names its scope`);
    if (method === 'get') t.not(scope, 'post', 'a GET never needs post (admins\' reads need manage)');
    // A token that may only read is refused anything more before the request is looked at.
    const r = await new Agent(app.url).request(method.toUpperCase(), urlOf(path), { json: method === 'get' ? undefined : {}, headers: bearer });
    if (scope === 'session-only') t.match(r.json(), { error: { code: 'session_only' } }, `${method} ${path}: never with a token`);
    else if (scope === 'read') t.not(r.json<{ error?: { code: string } }>().error?.code, 'insufficient_scope', `${method} ${path}: read is enough`);
    else t.match(r.json(), { error: { code: 'insufficient_scope' } }, `${method} ${path}: ${scope} is needed`);
    checked++;
  }
  t.ok(checked >= 20, `${checked} operations checked`);
  const out = await new Agent(app.url).request('POST', '/api/auth/logout-everywhere', { headers: bearer });
  t.match(out.json(), { error: { code: 'session_only' } }, 'a token cannot log its user out everywhere');
  t.equal((await owner.get('/api/me')).status, 200, 'and the session lives on');
});
