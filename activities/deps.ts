// What activities need, each as an interface; the real dependencies are built in workers/ only.
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { ConnectorRegistry } from '../connectors/registry';
import type { Notifier } from '../lib/notifier';
import type { PolicyEngine } from '../lib/policy-engine';
import type { SecretStore } from '../lib/secret-store';

export type { ConnectorRegistry } from '../connectors/registry';

export interface ActivityDeps {
  pool: Pool;
  connectors: ConnectorRegistry;
  secrets: SecretStore;
  policy: PolicyEngine;
  notifier: Notifier;
  /** Verifies the signed principal of messages that widen or restore access (lib/authority.ts). */
  authorityKey: Buffer;
  /** For activities that reach other workflows (e.g. containment ending running elevations). */
  temporal?: { client: Client; taskQueue: string };
}
