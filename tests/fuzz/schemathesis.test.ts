// The outside fuzzer (issue 13): schemathesis (pinned, installed by `npm ci` into .venv-fuzz) against
// the live API — real worker, real Temporal dev server, the real estate — from its /openapi.json.
// 1. Negative data (invalid by the published schema), as an admin: the fuzzer's negative_data_rejection
//    check (a 4xx for what the document forbids), and the invariants below.
// 2. Valid data (and every boundary the document states), as an admin: every response conforms to its
//    schema, and the invariants below.
// Invariants of both runs: no 5xx; no rejected request started a workflow or changed an estate role.
// Bounded by examples per operation and a fixed seed (not by time). Counts are printed.
// Not checked: that every schema-valid request is accepted — most are refused for the state they
// meet (an unknown NHI, a grace policy forbids, a start in the past), which a schema cannot say.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { projectRoot } from '../../lib/paths';
import { NhiIdKey } from '../../workflows/search-attributes';
import { createApiWorld, type ApiWorld } from '../helpers/api-world';

const FUZZER = path.join(projectRoot, '.venv-fuzz', 'bin', 'schemathesis');
const UNLIMITED = '1000000';

interface Exchange { method: string; url: string; status: number; start: number; end: number }

let a: ApiWorld;
let server: Server;
const exchanges: Exchange[] = [];

beforeAll(async () => {
  a = await createApiWorld({
    env: { RATE_LIMIT_AUTH_FAILURES: UNLIMITED, RATE_LIMIT_WRITES_PER_PRINCIPAL: UNLIMITED, RATE_LIMIT_WRITES_PER_IP: UNLIMITED, GITHUB_WEBHOOK_SECRET: 'f'.repeat(32), GITGUARDIAN_WEBHOOK_SECRET: 'g'.repeat(32) },
  });
  // Every exchange recorded: which ones were rejected, and when.
  server = createServer((req, res) => {
    const start = Date.now();
    res.on('finish', () => exchanges.push({ method: req.method ?? '', url: req.url ?? '', status: res.statusCode, start, end: Date.now() }));
    a.app(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
}, 120_000);
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await a?.teardown();
});

function fuzz(mode: 'positive' | 'negative', checks: string[], examples: number): Promise<{ code: number | null; out: string }> {
  const port = (server.address() as { port: number }).port;
  const args = ['run', `http://127.0.0.1:${port}/openapi.json`, '-H', `Authorization: Bearer ${a.tokens.admin}`, '--mode', mode, '--max-examples', String(examples), '--seed', '13', '--workers', '1', '--phases', 'examples,coverage,fuzzing', '--checks', checks.join(','), '--no-shrink', '--request-timeout', '30', '--output-truncate', 'false'];
  return new Promise((resolve, reject) => {
    // Its caches (.schemathesis, .hypothesis) go into its own venv, not the work tree.
    const child = spawn(FUZZER, args, { cwd: path.dirname(path.dirname(FUZZER)), env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

const summary = (out: string) => /Test cases:\s*\n\s*(.+)/.exec(out)?.[1]?.trim() ?? 'no summary';
const byClass = (xs: Exchange[]) => xs.reduce<Record<string, number>>((m, x) => ((m[`${Math.floor(x.status / 100)}xx`] = (m[`${Math.floor(x.status / 100)}xx`] ?? 0) + 1), m), {});

async function workflows(): Promise<{ id: string; start: number; type: string; nhiId?: string }[]> {
  const out = [];
  for await (const wf of a.w.env.client.workflow.list()) out.push({ id: wf.workflowId, start: wf.startTime.getTime(), type: wf.type, nhiId: wf.typedSearchAttributes.get(NhiIdKey) });
  return out;
}

/** Each estate role's login, limit, password presence and memberships. */
async function estateRoles(): Promise<Map<string, unknown>> {
  const { rows } = await a.w.estateAdmin.query<{ rolname: string }>(
    `SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolpassword IS NOT NULL AS has_password,
            ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of
       FROM pg_authid r WHERE r.rolname LIKE $1 ORDER BY r.rolname`,
    [`${a.w.prefix}%`],
  );
  return new Map(rows.map((r) => [r.rolname, r]));
}

/**
 * One fuzz run and the invariants around it: no 5xx; no workflow started inside a rejected
 * request's window (requests run one at a time, and the API starts workflows within the request);
 * no estate role changed other than those of NHIs an accepted request started a workflow for.
 */
async function run(mode: 'positive' | 'negative', checks: string[]) {
  const [wfBefore, rolesBefore] = [await workflows(), await estateRoles()];
  const known = new Set(wfBefore.map((w) => w.id));
  const from = exchanges.length;
  const r = await fuzz(mode, checks, 6);
  const mine = exchanges.slice(from).filter((x) => x.url !== '/openapi.json');
  const started = (await workflows()).filter((w) => !known.has(w.id));
  const rejected = mine.filter((x) => x.status >= 400);
  const inWindow = (w: { start: number }) => rejected.find((x) => w.start >= x.start - 5 && w.start <= x.end + 5);
  const rolesAfter = await estateRoles();
  const touched = new Set(started.map((w) => (w.nhiId ? a.w.role(w.nhiId) : '')));
  const changed = [...rolesAfter.keys(), ...rolesBefore.keys()].filter((k, i, all) => all.indexOf(k) === i && !touched.has(k) && JSON.stringify(rolesAfter.get(k)) !== JSON.stringify(rolesBefore.get(k)));
  process.stdout.write(`[fuzz] ${mode}: ${summary(r.out)}; ${mine.length} requests ${JSON.stringify(byClass(mine))}; ${started.length} workflow(s) started by accepted requests\n`);
  if (r.code !== 0) process.stdout.write(r.out.slice(-20_000));
  expect(r.code).toBe(0);
  expect(mine.length).toBeGreaterThan(200);
  expect(mine.filter((x) => x.status >= 500)).toEqual([]);
  expect(started.filter(inWindow).map((w) => `${w.type} ${w.id} during ${inWindow(w)?.method} ${inWindow(w)?.url}`)).toEqual([]);
  expect(changed).toEqual([]);
}

test('negative data (invalid by the published schema): rejected with a 4xx, no workflow started, no role changed', async () => {
  await run('negative', ['not_a_server_error', 'response_schema_conformance', 'negative_data_rejection', 'content_type_conformance']);
}, 300_000);

test('valid data: no 5xx, responses as documented, no rejected request started a workflow or changed a role', async () => {
  await run('positive', ['not_a_server_error', 'response_schema_conformance', 'content_type_conformance']);
}, 300_000);
