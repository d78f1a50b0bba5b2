// The connector registry and the configuration that builds it: pure, no target needed.
import { createConnectorRegistry, UnknownConnectorError } from '../../connectors/registry';
import type { Connector } from '../../connectors/types';
import { targetFailure } from '../../enforcement/target-failures';
import { ConfigError, loadConfig } from '../../lib/config';

const fake = (name: string) => ({ name, close: async () => undefined }) as unknown as Connector;

test('get() names what is configured; an unknown name is UnknownConnectorError, never retried even where revocations never give up', () => {
  const r = createConnectorRegistry([fake('postgres'), fake('aws')]);
  expect(r.configuredConnectors()).toEqual(['aws', 'postgres']);
  expect(r.get('aws').name).toBe('aws');
  let err: unknown;
  try {
    r.get('gcp');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UnknownConnectorError);
  expect(err).toMatchObject({ code: 'unknown_connector', connector: 'gcp' });
  expect((err as Error).message).toContain('configured: aws, postgres');
  for (const rule of ['never-abandon', 'stop-on-permanent'] as const) {
    expect(targetFailure('reconciling x', err, rule)).toMatchObject({ nonRetryable: true, type: 'UnknownConnector' });
  }
  expect(() => createConnectorRegistry([fake('aws'), fake('aws')])).toThrow(/two connectors/);
});

test('configuration: connectors by default and by CONNECTORS; entitlement maps and Vault settings checked at start-up', () => {
  expect(loadConfig({ NODE_ENV: 'development' }).connectors).toEqual(['postgres', 'aws', 'openbao']);
  expect(loadConfig({ NODE_ENV: 'test' }).connectors).toEqual(['postgres']);
  expect(loadConfig({ NODE_ENV: 'test', CONNECTORS: 'postgres, aws' }).connectors).toEqual(['postgres', 'aws']);
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (e) {
      return (e as ConfigError).problems;
    }
  };
  expect(problems({ NODE_ENV: 'test', CONNECTORS: 'postgres,gcp' })[0]).toMatch(/^CONNECTORS/);
  expect(problems({ NODE_ENV: 'test', AWS_ENTITLEMENTS: '{not json' })[0]).toMatch(/^AWS_ENTITLEMENTS: must be JSON/);
  expect(problems({ NODE_ENV: 'test', AWS_ENTITLEMENTS: '{"x": {"group": "g", "policy": "p"}}' })[0]).toMatch(/exactly one of group or policy/);
  expect(problems({ NODE_ENV: 'test', SECRET_STORE: 'vault' })).toEqual([expect.stringMatching(/^VAULT_ADDR/), expect.stringMatching(/^VAULT_TOKEN/)]);
  expect(problems({ NODE_ENV: 'test', SECRET_STORE: 'vault', VAULT_ADDR: 'http://vault:8200', VAULT_ROLE_ID: 'r', VAULT_SECRET_ID: 's' })).toEqual([]);
  expect(problems({ NODE_ENV: 'test', VAULT_ADDR: 'not a url' })[0]).toMatch(/^VAULT_ADDR/);
  expect(loadConfig({ NODE_ENV: 'development' })).toMatchObject({ localAws: true, localOpenBao: true });
  expect(loadConfig({ NODE_ENV: 'development', AWS_ENDPOINT_URL: 'http://aws.internal:4566', VAULT_ADDR: 'http://v:8200', VAULT_TOKEN: 't' })).toMatchObject({ localAws: false, localOpenBao: false });
});
