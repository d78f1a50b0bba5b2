// ensureSearchAttributes against the real dev server: the helper's server has our attributes on
// `default` only, so each case registers a fresh namespace without them. A refusing server (Temporal
// Cloud, no admin rights) cannot be made from the dev server: there the operator service is a stub
// that refuses, and the namespace and visibility queries are the real server's.
import { randomBytes } from 'node:crypto';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createCommands, ensureSearchAttributes, SearchAttributesError, type SearchAttributesConnection } from '../../lib/search-attributes';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { createLocalEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const { IndexedValueType } = temporal.api.enums.v1;
const NAMES = ['NhiId', 'Scenario', 'NhiState', 'ChangeId', 'RequestedBy'];

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await createLocalEnv();
}, 60_000);

afterAll(async () => env?.teardown());

/** A new namespace on the dev server, with no custom search attributes. */
async function freshNamespace(): Promise<string> {
  const namespace = `sa-${randomBytes(4).toString('hex')}`;
  await env.connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
  await waitFor(`namespace ${namespace}`, () => env.connection.operatorService.listSearchAttributes({ namespace }).then(() => true));
  return namespace;
}

/** What the server itself lists as the namespace's custom attributes. */
async function registered(namespace: string): Promise<Record<string, number>> {
  return { ...((await env.connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {}) } as Record<string, number>;
}

function refusal(code: number, details: string) {
  return Object.assign(new Error(details), { code, details, metadata: {} });
}

/** The real server, but an operator service that refuses like Temporal Cloud does. */
function refusingOperator(opts: { list: boolean; add: boolean }): SearchAttributesConnection {
  const real = env.connection.operatorService;
  return {
    workflowService: env.connection.workflowService,
    operatorService: {
      listSearchAttributes: (req: temporal.api.operatorservice.v1.IListSearchAttributesRequest) => (opts.list ? Promise.reject(refusal(7, 'Request unauthorized.')) : real.listSearchAttributes(req)),
      addSearchAttributes: (req: temporal.api.operatorservice.v1.IAddSearchAttributesRequest) => (opts.add ? Promise.reject(refusal(7, 'Request unauthorized.')) : real.addSearchAttributes(req)),
    } as unknown as SearchAttributesConnection['operatorService'],
  };
}

test('the list is the one the workflows use', () => {
  expect(ALL_SEARCH_ATTRIBUTES.map((k) => [k.name, k.type])).toEqual(NAMES.map((n) => [n, 'KEYWORD']));
});

test('on the dev server as the tests start it, everything is there: nothing to do', async () => {
  const r = await ensureSearchAttributes(env.connection, { namespace: 'default' });
  expect(r).toEqual({ namespace: 'default', registered: [], present: NAMES, typesChecked: true });
});

test('missing attributes are registered as Keyword; a second run changes nothing', async () => {
  const namespace = await freshNamespace();
  expect(await registered(namespace)).toEqual({});

  const first = await ensureSearchAttributes(env.connection, { namespace });
  expect(first).toEqual({ namespace, registered: NAMES, present: [], typesChecked: true });
  const after = await registered(namespace);
  expect(after).toEqual(Object.fromEntries(NAMES.map((n) => [n, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])));
  // Usable at once: a visibility query on each is valid.
  for (const n of NAMES) await env.connection.workflowService.countWorkflowExecutions({ namespace, query: `${n} = "x"` });

  const second = await ensureSearchAttributes(env.connection, { namespace });
  expect(second).toEqual({ namespace, registered: [], present: NAMES, typesChecked: true });
  expect(await registered(namespace)).toEqual(after);
});

test('only the missing ones are registered', async () => {
  const namespace = await freshNamespace();
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: { NhiId: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD } });
  const r = await ensureSearchAttributes(env.connection, { namespace });
  expect(r).toEqual({ namespace, registered: ['Scenario', 'NhiState', 'ChangeId', 'RequestedBy'], present: ['NhiId'], typesChecked: true });
  expect(Object.keys(await registered(namespace)).sort()).toEqual([...NAMES].sort());
});

test('an attribute registered with another type is an error that names it, and nothing is registered', async () => {
  const namespace = await freshNamespace();
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: { NhiState: IndexedValueType.INDEXED_VALUE_TYPE_TEXT } });
  const err = await ensureSearchAttributes(env.connection, { namespace, address: 'temporal.example:7233' }).catch((e) => e);
  expect(err).toBeInstanceOf(SearchAttributesError);
  expect(err.message).toContain(`Search attribute of the wrong type on Temporal namespace "${namespace}" at temporal.example:7233: NhiState is registered as Text, not Keyword`);
  expect(err.message).toContain(`temporal operator search-attribute remove --namespace ${namespace} --name NhiState`);
  expect(err.message).not.toMatch(/NhiId|Scenario|ChangeId|RequestedBy/);
  expect(await registered(namespace)).toEqual({ NhiState: IndexedValueType.INDEXED_VALUE_TYPE_TEXT });
});

test('a namespace that does not exist is named', async () => {
  const err = await ensureSearchAttributes(env.connection, { namespace: 'no-such-namespace' }).catch((e) => e);
  expect(err).toBeInstanceOf(SearchAttributesError);
  expect(err.message).toMatch(/has no namespace "no-such-namespace".*TEMPORAL_NAMESPACE/);
});

test('registration refused (no admin rights): stops with the exact commands for the missing ones', async () => {
  const namespace = await freshNamespace();
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: { NhiId: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, Scenario: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD } });
  const err = await ensureSearchAttributes(refusingOperator({ list: false, add: true }), { namespace, address: 'temporal.example:7233' }).catch((e) => e);
  expect(err).toBeInstanceOf(SearchAttributesError);
  const commands = ['NhiState', 'ChangeId', 'RequestedBy'].map((n) => `temporal operator search-attribute create --namespace ${namespace} --name ${n} --type Keyword`);
  expect(err.commands).toEqual(commands);
  for (const c of commands) expect(err.message).toContain(`\n  ${c}\n`);
  expect(err.message).toMatch(/refused to register search attributes .*PERMISSION_DENIED: Request unauthorized/);
  expect(err.message).toContain('--address temporal.example:7233');
  expect(Object.keys(await registered(namespace)).sort()).toEqual(['NhiId', 'Scenario']);
});

test('operator service refused altogether (Temporal Cloud): visibility queries find what is missing; tcld for a Cloud address', async () => {
  const namespace = await freshNamespace();
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: { NhiId: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD } });
  const err = await ensureSearchAttributes(refusingOperator({ list: true, add: true }), { namespace, address: `${namespace}.a1b2c.tmprl.cloud:7233` }).catch((e) => e);
  expect(err).toBeInstanceOf(SearchAttributesError);
  expect(err.commands).toEqual(createCommands(namespace, ALL_SEARCH_ATTRIBUTES.filter((k) => k.name !== 'NhiId')));
  expect(err.message).toContain('Missing: Scenario (Keyword), NhiState (Keyword), ChangeId (Keyword), RequestedBy (Keyword)');
  expect(err.message).toContain(`tcld namespace search-attributes add --namespace ${namespace} --search-attribute Scenario=Keyword`);

  // Once they are registered (by someone allowed to), the same refusing server starts.
  await ensureSearchAttributes(env.connection, { namespace });
  expect(await ensureSearchAttributes(refusingOperator({ list: true, add: true }), { namespace })).toEqual({ namespace, registered: [], present: NAMES, typesChecked: false });
});
