// The chaos run's short version (chaos/run.ts, one round, small load): two worker processes on one
// task queue, each SIGKILLed once (one replaced at once, one a few seconds later), the orchestrator
// database's connections terminated, duplicated and foreign revokes, duplicated and reordered
// alerts; then every invariant must hold.
import { runChaos } from '../../chaos/run';
import { formatInvariants } from '../../chaos/invariants';
import { createTestWorld, type TestWorld } from '../helpers/world';

let w: TestWorld;
beforeAll(async () => {
  w = await createTestWorld({ temporal: 'local', runWorker: false });
}, 120_000);
afterAll(async () => w?.teardown());

test('one of each fault under a small mixed load: nothing lost, zero standing access, one rotation per incident', async () => {
  const report = await runChaos(w, { rounds: 1, revokedElevations: 3, expiringElevations: 0, leaks: 2, settleMs: 75_000 });
  process.stdout.write(`[chaos] ${JSON.stringify(report.faults)}\n${formatInvariants(report.invariants)}\n`);
  expect(report.invariants.filter((r) => !r.ok)).toEqual([]);
  expect(report.invariants.map((r) => r.name)).toHaveLength(6);
  expect(report.workflows).toBe(5);
  expect(Object.values(report.faults).every((n) => n >= 1)).toBe(true);
}, 150_000);
