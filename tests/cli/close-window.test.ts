// `nhi close-window <changeId>` against a real Temporal dev server: it signals exactly the running
// elevations of that change (no worker is needed to see the signal land in their history).
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { JIT_WORKFLOW_TYPE } from '../../scenarios/jit/contract';
import { ChangeIdKey, NhiIdKey } from '../../workflows/search-attributes';
import { createLocalEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { nhi } from '../helpers/cli';


let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createLocalEnv();
});
afterAll(async () => {
  await env?.teardown();
});

test('close-window signals every running elevation of the change, and only those', async () => {
  const start = (id: string, changeId: string) =>
    env.client.workflow.start(JIT_WORKFLOW_TYPE, {
      taskQueue: 'no-worker',
      workflowId: id,
      args: [],
      typedSearchAttributes: [
        { key: NhiIdKey, value: 'svc_x' },
        { key: ChangeIdKey, value: changeId },
      ],
    });
  const a = await start('jit-svc_x-aaaaaaaa', 'CHG-77');
  const b = await start('jit-svc_x-bbbbbbbb', 'CHG-77');
  const other = await start('jit-svc_x-cccccccc', 'CHG-78');
  const address = env.connection.options.address;
  const r = await waitFor('visibility', async () => {
    const out = await nhi(['close-window', 'CHG-77', '--reason', 'deploy done', '--json'], { TEMPORAL_ADDRESS: address, DATABASE_URL: 'postgres://unused@127.0.0.1:1/x' });
    return out.code === 0 && JSON.parse(out.stdout).reached === 2 ? out : null;
  });
  expect(JSON.parse(r.stdout).workflowIds.sort()).toEqual([a.workflowId, b.workflowId]);
  const signalled = async (h: typeof a) =>
    (await h.fetchHistory()).events?.some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'closeWindow');
  expect(await signalled(a)).toBe(true);
  expect(await signalled(b)).toBe(true);
  expect(await signalled(other)).toBe(false);
}, 60_000);

test('a malformed change id is refused with a clear message', async () => {
  const r = await nhi(['close-window', 'bad id!'], { TEMPORAL_ADDRESS: env.connection.options.address });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/change id/);
});
