// The configured connectors by name. An inventory record that names another connector is a bad
// record, not a target failure: asking for it throws a PermanentConnectorError with the code
// `unknown_connector` (never retried), so one bad record stops only the steps that concern it.
import { ConnectorErrorCode, PermanentConnectorError, type Connector } from './types';
import type { ConnectorRegistry } from '../activities/deps';

export class UnknownConnectorError extends PermanentConnectorError {
  constructor(readonly connector: string, configured: string[]) {
    super(`no connector named ${JSON.stringify(connector)} is configured (configured: ${configured.join(', ') || 'none'})`, ConnectorErrorCode.UnknownConnector);
  }
}

export function createConnectorRegistry(connectors: Connector[]): ConnectorRegistry {
  const byName = new Map(connectors.map((c) => [c.name, c]));
  if (byName.size !== connectors.length) throw new Error('two connectors share a name');
  return {
    get(name: string) {
      const c = byName.get(name);
      if (!c) throw new UnknownConnectorError(name, [...byName.keys()]);
      return c;
    },
    names: () => [...byName.keys()].sort(),
  };
}
