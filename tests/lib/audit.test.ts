// The audit trail on real Postgres: idempotent per (workflow, step), one unforked chain under
// concurrent writers, tamper detection, append-only.
import { appendAudit, canonicalJson, GENESIS_HASH, hashEvent, hashPieces, queryAudit, verifyAuditChain } from '../../lib/audit';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

const ev = (workflowId: string, stepId: string, extra: object = {}) => ({
  workflowId,
  stepId,
  scenario: 'jit',
  nhiId: 'svc_a',
  actor: 'alice',
  action: 'entitlement.grant',
  outcome: 'granted',
  readback: { present: true, nested: { b: 1, a: [1, 2] } },
  ...extra,
});

test('a retried step writes one row and returns it again', async () => {
  const first = await appendAudit(db.pool, ev('wf-1', 'grant:x'));
  const again = await appendAudit(db.pool, ev('wf-1', 'grant:x', { outcome: 'different' }));
  expect(again.seq).toBe(first.seq);
  expect(again.outcome).toBe('granted');
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM audit_events WHERE workflow_id = 'wf-1'");
  expect(rows[0].n).toBe(1);
  expect(first.prevHash).toBe(GENESIS_HASH);
});

test('concurrent writers extend one chain without forking it', async () => {
  await Promise.all(Array.from({ length: 40 }, (_, i) => appendAudit(db.pool, ev(`wf-c${i % 5}`, `step-${i}`))));
  const { rows } = await db.pool.query('SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq');
  for (let i = 1; i < rows.length; i++) expect(rows[i].prev_hash).toBe(rows[i - 1].hash);
  expect(await verifyAuditChain(db.pool)).toEqual({ ok: true, checked: rows.length });
});

test('the database hashes exactly what hashEvent hashes (the format is unchanged), awkward text included', async () => {
  const details = { ключ: 'värde ✓ 🔐', z: null, a: [{ y: 1.5, x: 'line\nbreak' }] };
  const awkward = ev('wf-fmt', 'step "1" \\ ü', { actor: 'zoë "q" \\ \u2028', details, target: null });
  const row = await appendAudit(db.pool, awkward);
  // The three pieces the database joins are the canonical JSON hashEvent hashes, split around at and prevHash.
  const p = hashPieces(row);
  expect(p.beforeAt + JSON.stringify(row.at) + p.beforePrev + JSON.stringify(row.prevHash) + p.afterPrev).toBe(
    canonicalJson({ prevHash: row.prevHash, at: row.at, workflowId: row.workflowId, stepId: row.stepId, scenario: row.scenario, nhiId: row.nhiId, actor: row.actor, action: row.action, outcome: row.outcome, decision: row.decision, target: row.target, readback: row.readback, details: row.details }),
  );
  expect(hashEvent(row)).toBe(row.hash);
  expect(row).toMatchObject({ actor: awkward.actor, details, stepId: awkward.stepId });
  const { rows } = await db.pool.query('SELECT hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1', [row.seq]);
  expect(row.prevHash).toBe(rows[0].hash);
  expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
});

test('append-only: updates and deletes are refused', async () => {
  await expect(db.pool.query("UPDATE audit_events SET outcome = 'x'")).rejects.toThrow(/append-only/);
  await expect(db.pool.query('DELETE FROM audit_events')).rejects.toThrow(/append-only/);
});

test('a tampered row is detected at its sequence number', async () => {
  const target = await appendAudit(db.pool, ev('wf-t', 'grant:y'));
  await appendAudit(db.pool, ev('wf-t', 'release:y'));
  const c = await db.pool.connect();
  try {
    // Someone with superuser rights goes around the trigger.
    await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await c.query("UPDATE audit_events SET outcome = 'not granted' WHERE seq = $1", [target.seq]);
    await c.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
  } finally {
    c.release();
  }
  const v = await verifyAuditChain(db.pool);
  expect(v.ok).toBe(false);
  expect(v.brokenAt).toEqual({ seq: target.seq, reason: 'row content does not match its hash' });
});

test('query by NHI and workflow, paginated with a cursor', async () => {
  const page1 = await queryAudit(db.pool, { workflowId: 'wf-c1', limit: 3 });
  expect(page1.events).toHaveLength(3);
  expect(page1.nextCursor).not.toBeNull();
  const page2 = await queryAudit(db.pool, { workflowId: 'wf-c1', limit: 100, after: page1.nextCursor! });
  expect(page2.events.length).toBe(5);
  expect(page2.nextCursor).toBeNull();
  expect(new Set([...page1.events, ...page2.events].map((e) => e.stepId)).size).toBe(8);
});
