// The scenario routers, wired from the same dependencies the worker uses (config, policy, connectors).
import type { Router } from 'express';
import type { Pool } from 'pg';
import type { ConnectorRegistry } from '../activities/deps';
import type { Config } from '../lib/config';
import type { DetectorSettings } from '../scenarios/anomaly/detector';
import type { PolicyEngine } from '../lib/policy-engine';
import type { AnomalySettings } from '../scenarios/anomaly/contract';
import type { JitSettings } from '../scenarios/jit/contract';
import type { OffboardingSettings } from '../scenarios/offboarding/contract';
import type { TemporalDeps } from './app';
import { createAccessRouter } from './routes/access';
import { createAnomalyRouter } from '../scenarios/anomaly/routes';
import { createElevationRouter } from '../scenarios/jit/routes';
import { createLeakRouter } from '../scenarios/leak/routes';
import { createOffboardingRouter } from '../scenarios/offboarding/routes';
import { createConnectorRouter } from './routes/connectors';

export interface ScenarioDeps {
  pool: Pool;
  temporal: TemporalDeps;
  config: Config;
  policy: PolicyEngine;
  connectors: ConnectorRegistry;
  /** The key the API signs principals with (the workers verify with the same one). */
  authorityKey: Buffer;
  /** Offboarding: watch-check interval, checks per run, escalation attempts (defaults in the contract). */
  offboardingSettings?: Partial<OffboardingSettings>;
  /** How long abort/confirm wait for the workflow before answering 202 (default 20 s). */
  offboardingUpdateWaitMs?: number;
  /** Anomaly throttling: overrides of the settings taken from config (timeouts, connection limit). */
  anomalySettings?: Partial<AnomalySettings>;
  /** The usage detector: overrides of the parameters taken from config. */
  detectorSettings?: Partial<DetectorSettings>;
  /** How long clear waits for the verified restore before answering 202 (default 20 s). */
  anomalyUpdateWaitMs?: number;
}

export function jitSettings(config: Pick<Config, 'APPROVAL_TIMEOUT_MINUTES' | 'EXPIRY_WARNING_MINUTES' | 'REVOKE_ESCALATION_ATTEMPTS'>): JitSettings {
  return {
    approvalTimeoutMinutes: config.APPROVAL_TIMEOUT_MINUTES,
    expiryWarningMinutes: config.EXPIRY_WARNING_MINUTES,
    revokeEscalationAttempts: config.REVOKE_ESCALATION_ATTEMPTS,
  };
}

export function createScenarioRouters(deps: ScenarioDeps): Router[] {
  return [
    createElevationRouter({
      pool: deps.pool,
      client: deps.temporal.client,
      taskQueue: deps.temporal.taskQueue,
      policy: deps.policy,
      grantableEntitlements: (connector) => deps.connectors.get(connector).listGrantableEntitlements(),
      settings: jitSettings(deps.config),
      authorityKey: deps.authorityKey,
    }),
    createLeakRouter(deps),
    createOffboardingRouter(deps),
    createAnomalyRouter(deps),
    createAccessRouter(deps),
    createConnectorRouter(deps),
  ];
}
