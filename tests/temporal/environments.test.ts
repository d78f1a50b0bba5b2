import { createLocalEnv, createTimeSkippingEnv } from '../helpers/temporal';

test('the time-skipping server starts from the installed binary', async () => {
  const env = await createTimeSkippingEnv();
  try {
    expect(env.supportsTimeSkipping).toBe(true);
  } finally {
    await env.teardown();
  }
});

test('the dev server starts from the installed binary with our search attributes', async () => {
  const env = await createLocalEnv();
  try {
    const custom = await env.connection.operatorService.listSearchAttributes({ namespace: 'default' });
    expect(Object.keys(custom.customAttributes ?? {})).toEqual(expect.arrayContaining(['NhiId', 'Scenario', 'NhiState', 'ChangeId', 'RequestedBy']));
  } finally {
    await env.teardown();
  }
});
