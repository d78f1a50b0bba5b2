// The connectors this deployment is configured with, by the name an NHI's inventory record gives.
// Everything that needs a connector asks the registry; an unknown name is a permanent error with
// its own code (never retried: the configuration has to change first).
import { ConnectorErrorCode, PermanentConnectorError, type Connector } from './types';

export class UnknownConnectorError extends PermanentConnectorError {
  constructor(
    readonly connector: string,
    configured: readonly string[],
  ) {
    super(`no connector named ${JSON.stringify(connector)} is configured (configured: ${configured.join(', ') || 'none'})`, ConnectorErrorCode.UnknownConnector);
    this.name = 'UnknownConnectorError';
  }
}

export interface ConnectorRegistry {
  /** The connector an NHI's inventory record names (e.g. 'postgres', 'aws'); throws UnknownConnectorError. */
  get(name: string): Connector;
  /** The configured connectors' names, sorted. */
  configuredConnectors(): string[];
}

export interface OwnedConnectorRegistry extends ConnectorRegistry {
  close(): Promise<void>;
}

export function createConnectorRegistry(connectors: readonly Connector[]): OwnedConnectorRegistry {
  const byName = new Map<string, Connector>();
  for (const c of connectors) {
    if (byName.has(c.name)) throw new Error(`two connectors are configured with the name ${c.name}`);
    byName.set(c.name, c);
  }
  const names = [...byName.keys()].sort();
  return {
    get(name) {
      const c = byName.get(name);
      if (!c) throw new UnknownConnectorError(name, names);
      return c;
    },
    configuredConnectors: () => [...names],
    async close() {
      await Promise.all([...byName.values()].map((c) => c.close().catch(() => undefined)));
    },
  };
}
