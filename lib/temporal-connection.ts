// The Temporal connection comes from @temporalio/envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TEMPORAL_API_KEY, TEMPORAL_TLS_*, TOML profiles), so one build runs against the dev server,
// a self-hosted cluster or Temporal Cloud. Without any of those, it is the local dev server.
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from './config';
import { dataConverterFor } from './payload-codec';

export interface TemporalTarget {
  connectionOptions: NativeConnectionOptions;
  namespace: string;
  /** `host:port` the connection goes to. */
  address: string;
  /** What named it: nothing (the local dev server), TEMPORAL_ADDRESS, or an envconfig profile. */
  source: 'dev server' | 'TEMPORAL_ADDRESS' | 'profile';
}

/** True when TEMPORAL_ADDRESS or an envconfig profile names the server: `npm start` then runs none. */
export function usesExternalTemporal(config: Pick<Config, 'TEMPORAL_ADDRESS'>, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(config.TEMPORAL_ADDRESS || env.TEMPORAL_CONFIG_FILE || env.TEMPORAL_PROFILE);
}

export function temporalTarget(config: Config, env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  const usesProfile = Boolean(env.TEMPORAL_CONFIG_FILE || env.TEMPORAL_PROFILE);
  const overrideEnvVars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) overrideEnvVars[k] = v;
  if (!config.TEMPORAL_ADDRESS && !usesProfile) overrideEnvVars.TEMPORAL_ADDRESS = `127.0.0.1:${config.TEMPORAL_PORT}`;
  if (!env.TEMPORAL_NAMESPACE && !usesProfile) overrideEnvVars.TEMPORAL_NAMESPACE = config.TEMPORAL_NAMESPACE;
  const { connectionOptions, namespace } = loadClientConnectConfig({ overrideEnvVars });
  return {
    connectionOptions,
    namespace: namespace ?? config.TEMPORAL_NAMESPACE,
    address: connectionOptions.address ?? overrideEnvVars.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`,
    source: config.TEMPORAL_ADDRESS ? 'TEMPORAL_ADDRESS' : usesProfile ? 'profile' : 'dev server',
  };
}

export async function connectClient(config: Config): Promise<{ client: Client; connection: Connection } & Omit<TemporalTarget, 'connectionOptions'>> {
  const { connectionOptions, ...target } = temporalTarget(config);
  const connection = await Connection.connect(connectionOptions as Parameters<typeof Connection.connect>[0]);
  // The data converter from the one place (payload encryption, lib/payload-codec.ts).
  return { client: new Client({ connection, namespace: target.namespace, dataConverter: dataConverterFor(config) }), connection, ...target };
}
