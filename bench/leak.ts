// Leak containment benchmark (prints figures, asserts nothing): alert → verified containment,
// p50/p99, at 1 and 20 concurrent alerts on distinct NHIs, beside the raw connector sequence (the
// same generate/store/set/probe/activate/terminate/probe calls made directly, no orchestration),
// and their ratio — on a real Temporal dev server, a real worker and real PostgreSQL roles, all on
// this machine.
//   npm run bench:leak      (BENCH_LEVELS=1,20 BENCH_ROUNDS=30,5 BENCH_WARMUP=1 BENCH_DEBUG=1)
//
// The alert is sent the way the API sends it (scenarios/leak/dispatch.ts startOrJoin): signal-with-start
// of `leakContainment` with id `leak-<nhiId>` and the alert as the `alert` signal — the HTTP layer,
// the matching queries and the API's `leak.alert` audit row are left out. The clock starts just before that call; the alert's
// `receivedAt` is that instant, so the workflow's own `receivedToContainedMs` has the same origin.
// The clock stops at the workflow's own `contained` timeline entry (stamped in the activation that
// received the verification: old credential denied, new granted, no pre-rotation session); the
// time to the incident row being closed (incidents.closed_at) and to the result reaching the
// client are printed too. Every NHI is fresh, with an active stored credential (the "leaked" one),
// and no open session. The raw side times generateCredential → secrets.putPending →
// connector.setCredential → probe(new) → secrets.activate → connector.invalidateSessions →
// probe(old), N at once on N other fresh NHIs, through the same pools the worker uses. Rounds
// alternate (containments, then raw) so that drift on the machine hits both sides alike.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { generateCredential } from '../lib/secret-store';
import { createTestWorld, type TestWorld } from '../tests/helpers/world';
import {
  alertSignal,
  LEAK_WORKFLOW_TYPE,
  leakSummary,
  leakWorkflowId,
  type LeakAlert,
  type LeakContainmentInput,
  type LeakStatus,
} from '../scenarios/leak/contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../workflows/search-attributes';
import { machine, pct, runBench, startBenchPostgres } from './support';

const levels = (process.env.BENCH_LEVELS ?? '1,20').split(',').map(Number);
const roundList = (process.env.BENCH_ROUNDS ?? '30,5').split(',').map(Number);
const roundsFor = (i: number) => roundList[Math.min(i, roundList.length - 1)];
const warmup = Number(process.env.BENCH_WARMUP ?? 1);
const debug = process.env.BENCH_DEBUG === '1';

const at = (s: LeakStatus, event: string) => {
  const e = s.timeline.find((t) => t.event === event);
  return e ? Date.parse(e.at) : NaN;
};

/** Milliseconds from the alert being sent. */
interface ContainmentSample {
  /** The workflow's first activation with the alert: the `alert` timeline entry. */
  toAlert: number;
  /** `rotated` on the timeline: new credential set, probed (granted) and active. */
  toRotated: number;
  /** `contained` on the timeline (same activation as `verified`): old credential denied, new granted, no
   *  pre-rotation session. Equals the workflow's own receivedToContainedMs (same origin). */
  toContained: number;
  /** The incident row closed (incidents.closed_at, the orchestrator database's clock — same machine). */
  toClosed: number;
  /** The workflow's result back at the client. */
  toResult: number;
  ok: boolean;
}

interface RawSample {
  total: number;
  ok: boolean;
}

let seq = 0;
async function freshNhis(w: TestWorld, n: number, tag: string): Promise<{ id: string; old: string }[]> {
  const out: { id: string; old: string }[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${tag}_${seq++}`;
    await w.addNhi({ id, kind: 'service_account', criticality: 'high' });
    out.push({ id, old: await w.issueCredential(id) });
  }
  return out;
}

function alertFor(nhiId: string, sentAt: number): LeakAlert {
  const id = randomBytes(4).toString('hex');
  const iso = new Date(sentAt).toISOString();
  return {
    key: `generic:bench:${nhiId}:${id}|reported|`,
    source: 'generic',
    externalId: `generic:bench:${nhiId}`,
    label: 'bench',
    action: 'reported',
    trigger: true,
    severity: 'high',
    fingerprints: [],
    detectedAt: iso,
    receivedAt: iso,
    summary: `bench scanner: ${nhiId}`,
    matchedBy: 'nhi_id',
    reportedBy: 'detector-bot',
  };
}

/** N alerts at once, each on its own NHI; waits for every containment to finish. */
async function containmentRound(w: TestWorld, n: number): Promise<ContainmentSample[]> {
  const nhis = await freshNhis(w, n, 'leak');
  return Promise.all(
    nhis.map(async ({ id: nhiId, old }) => {
      const sent = Date.now();
      const alert = alertFor(nhiId, sent);
      const input: LeakContainmentInput = { version: 1, nhiId };
      // Exactly the options the API's startOrJoin uses.
      const handle = await w.env.client.workflow.signalWithStart(LEAK_WORKFLOW_TYPE, {
        taskQueue: w.taskQueue,
        workflowId: leakWorkflowId(nhiId),
        args: [input],
        signal: alertSignal,
        signalArgs: [alert],
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        staticSummary: leakSummary(nhiId, alert),
        staticDetails: `${alert.summary}\nMatched by ${alert.matchedBy}`,
        typedSearchAttributes: [
          { key: NhiIdKey, value: nhiId },
          { key: ScenarioKey, value: 'leak' },
          { key: NhiStateKey, value: 'opening' },
        ],
      });
      const s = (await w.env.client.workflow.getHandle(handle.workflowId, handle.signaledRunId).result()) as LeakStatus;
      const done = Date.now();
      const { rows } = await w.db.pool.query<{ status: string; closed_at: Date | null }>('SELECT status, closed_at FROM incidents WHERE id = $1', [s.incidentId]);
      const incident = rows[0];
      // Verified at the target: the new credential works and the leaked one is refused (checked again here, outside the clock).
      const [newProbe, oldProbe] = await Promise.all([
        w.connector.probe(w.role(nhiId), await w.secrets.reveal(s.rotation!.newRef)),
        w.connector.probe(w.role(nhiId), old),
      ]);
      const ok =
        s.state === 'contained' &&
        s.verification?.oldCredential === 'denied' &&
        s.verification.newCredential === 'granted' &&
        s.verification.preRotationSessions === 0 &&
        incident?.status === 'closed' &&
        !!incident.closed_at &&
        newProbe.access === 'granted' &&
        oldProbe.access === 'denied';
      if (debug) process.stdout.write(`${nhiId}: sent ${new Date(sent).toISOString()} done +${done - sent} ms closed_at ${incident?.closed_at?.toISOString()}\n${s.timeline.map((t) => `  ${t.at} ${t.event}`).join('\n')}\n`);
      return {
        toAlert: at(s, 'alert') - sent,
        toRotated: at(s, 'rotated') - sent,
        toContained: at(s, 'contained') - sent,
        toClosed: (incident?.closed_at?.getTime() ?? NaN) - sent,
        toResult: done - sent,
        ok: ok && s.receivedToContainedMs === at(s, 'contained') - sent,
      };
    }),
  );
}

/** The same calls the containment makes at the target and the secret store, directly, N at once. */
async function rawRound(w: TestWorld, n: number): Promise<RawSample[]> {
  const nhis = await freshNhis(w, n, 'raw');
  return Promise.all(
    nhis.map(async ({ id: nhiId, old }) => {
      const role = w.role(nhiId);
      const t0 = performance.now();
      const value = generateCredential();
      const pending = await w.secrets.putPending(nhiId, value);
      await w.connector.setCredential(role, value);
      const fresh = await w.connector.probe(role, value);
      await w.secrets.activate(pending.ref);
      await w.connector.invalidateSessions(role);
      const denied = await w.connector.probe(role, old);
      const total = performance.now() - t0;
      return { total, ok: fresh.access === 'granted' && denied.access === 'denied' };
    }),
  );
}

const f = (x: number) => (Number.isFinite(x) ? String(Math.round(x)) : '–');
const r1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');

async function main() {
  const t = Date.now();
  const pg = await startBenchPostgres();
  const w = await createTestWorld({ temporal: 'local', runWorker: true });
  const rows: string[] = [];
  const detail: string[] = [];
  try {
    // Warm-up (not counted): the first workflow run creates the worker's sandbox, the first probes open the pools.
    for (let i = 0; i < warmup; i++) {
      await containmentRound(w, 1);
      await rawRound(w, 1);
    }
    for (const [li, n] of levels.entries()) {
      const rounds = roundsFor(li);
      const cont: ContainmentSample[] = [];
      const raw: RawSample[] = [];
      // Interleaved, so drift on the machine hits both sides alike.
      for (let r = 0; r < rounds; r++) {
        cont.push(...(await containmentRound(w, n)));
        raw.push(...(await rawRound(w, n)));
      }
      const m = (k: keyof Omit<ContainmentSample, 'ok'>) => cont.map((c) => c[k]);
      const p50p99 = (xs: number[]) => `${f(pct(xs, 50))} | ${f(pct(xs, 99))}`;
      const ratio = (xs: number[], ys: number[]) => `${r1(pct(xs, 50) / pct(ys, 50))}× | ${r1(pct(xs, 99) / pct(ys, 99))}×`;
      const contained = m('toContained');
      const closed = m('toClosed');
      const rawT = raw.map((x) => x.total);
      const okC = cont.filter((c) => c.ok).length;
      const okR = raw.filter((x) => x.ok).length;
      rows.push(`| ${n} | ${cont.length} | ${p50p99(contained)} | ${p50p99(rawT)} | ${ratio(contained, rawT)} | ${p50p99(closed)} | ${ratio(closed, rawT)} | ${okC}/${cont.length}, ${okR}/${raw.length} |`);
      detail.push(`| ${n} | ${p50p99(m('toAlert'))} | ${p50p99(m('toRotated'))} | ${p50p99(contained)} | ${p50p99(closed)} | ${p50p99(m('toResult'))} |`);
      process.stdout.write(`${n} concurrent: ${rounds} rounds done\n`);
    }
  } finally {
    await w.teardown();
    await pg.stop();
  }
  const cpus = os.cpus();
  process.stdout.write(
    [
      '',
      `Leak containment on ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; Temporal dev server, embedded PostgreSQL, one worker, all on this machine; ${levels.map((n, i) => `${roundsFor(i)} rounds at ${n}`).join(', ')}, after ${warmup} warm-up round(s); ${Math.round((Date.now() - t) / 1000)} s in all`,
      '',
      '| concurrent alerts | samples | alert → verified containment p50 (ms) | p99 (ms) | raw connector sequence p50 (ms) | p99 (ms) | ratio p50 | ratio p99 | alert → incident closed p50 (ms) | p99 (ms) | ratio p50 | ratio p99 | verified (orchestrated, raw) |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      'Orchestrated, by milestone (ms from the alert being sent; timeline = the workflow\'s own timestamps)',
      '',
      '| concurrent alerts | → `alert` (timeline) p50 | p99 | → `rotated` (timeline) p50 | p99 | → `contained` (timeline) p50 | p99 | → incident closed (closed_at) p50 | p99 | → result at the client p50 | p99 |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...detail,
      '',
    ].join('\n'),
  );
}

runBench(main);
