// What activities need, each as an interface; the real dependencies are built in workers/ only.
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { Connector } from '../connectors/types';
import type { Notifier } from '../lib/notifier';
import type { PolicyEngine } from '../lib/policy-engine';
import type { SecretStore } from '../lib/secret-store';

export interface ConnectorRegistry {
  /** The connector an NHI's inventory record names (e.g. 'postgres'). */
  get(name: string): Connector;
  /** The configured names (registration validates against them; see connectors/registry.ts). */
  names?(): string[];
}

export interface ActivityDeps {
  pool: Pool;
  connectors: ConnectorRegistry;
  secrets: SecretStore;
  policy: PolicyEngine;
  notifier: Notifier;
  /** For activities that reach other workflows (e.g. containment ending running elevations). */
  temporal?: { client: Client; taskQueue: string };
}
