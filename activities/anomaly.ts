// Anomaly throttling activities: the policy decision, snapshot, throttle levels and exact restore
// (each read back from the target and audited), the investigation incident, and the usage
// collector that turns the estate's live sessions into usage buckets and runs the detector.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ConnectorErrorCode, PermanentConnectorError, type AccessSnapshot, type AccessState, type Connector } from '../connectors/types';
import { minuteOf, resolveDetectorSettings } from '../lib/anomaly-detector';
import { appendAudit, type AuditEventInput } from '../lib/audit';
import { updateIncident, type IncidentStatus } from '../lib/incidents';
import { updateStatus } from '../lib/inventory';
import { canConfirmThrottle, decideThrottle } from '../lib/policy-decisions';
import { detectNhi, raiseDetections, recordCollectorSample, type Detection } from '../lib/usage';
import {
  ANOMALY_SCENARIO,
  type AnomalyEvidence,
  type RestoreReadback,
  type ThrottlePolicyEvidence,
  type ThrottleReadback,
  type TimelineEntry,
  type UsageCollectorInput,
  type UsageCollectorResult,
  type UsageSample,
} from '../workflows/anomalyThrottling.contract';
import { ErrorType } from '../workflows/errors';
import { statusQuery as leakStatusQuery } from '../workflows/leakContainment.contract';
import { currentWorkflowId, loadNhi, type NhiRecord } from './common';
import type { ActivityDeps } from './deps';
import { STANDING_HOLDER } from './jit';

const now = () => new Date().toISOString();
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const sameSet = (a: readonly string[], b: readonly string[]) => [...a].sort().join('\n') === [...b].sort().join('\n');

/** Retryable: the workflow's retry policy (and escalation) decide how long to keep at it. */
function enforcementFailed(what: string, err?: unknown): ApplicationFailure {
  return ApplicationFailure.retryable(err === undefined ? what : `${what}: ${message(err)}`, ErrorType.EnforcementFailed);
}

/** Connector failures retrying cannot fix stop at once; everything else is retried. */
async function atTarget<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    if (err instanceof PermanentConnectorError) {
      throw ApplicationFailure.create({ message: `${what}: ${err.message}`, type: ErrorType.PermanentConnector, nonRetryable: true, details: [{ code: err.code }] });
    }
    throw enforcementFailed(`${what} failed`, err);
  }
}

const nhiFacts = (nhi: NhiRecord) => ({ id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status });

export function createAnomalyActivities(deps: ActivityDeps) {
  async function target(nhiId: string): Promise<{ nhi: NhiRecord; connector: Connector; identity: string }> {
    const nhi = await loadNhi(deps.pool, nhiId);
    return { nhi, connector: deps.connectors.get(nhi.connector), identity: nhi.externalRef };
  }

  function audit(nhiId: string, e: Omit<AuditEventInput, 'workflowId' | 'scenario' | 'nhiId' | 'actor'> & { actor?: string }) {
    return appendAudit(deps.pool, { actor: 'system', ...e, workflowId: currentWorkflowId(), scenario: ANOMALY_SCENARIO, nhiId });
  }

  async function principalRoles(id: string): Promise<string[]> {
    const { rows } = await deps.pool.query<{ roles: string[] }>('SELECT roles FROM principals WHERE id = $1', [id]);
    return rows[0]?.roles ?? [];
  }

  /**
   * Snapshot memberships an elevation held and has released since the snapshot: restoring them would
   * hand back access whose window has ended, so they are left out (and reported).
   */
  async function endedElevationGrants(nhiId: string, snapshot: AccessSnapshot): Promise<string[]> {
    if (!snapshot.entitlements.length) return [];
    const { rows } = await deps.pool.query<{ entitlement: string }>(
      `SELECT entitlement FROM grants WHERE nhi_id = $1 AND entitlement = ANY($2::text[])
        GROUP BY entitlement
       HAVING bool_and(released_at IS NOT NULL) AND bool_and(holder <> $3) AND max(released_at) > $4`,
      [nhiId, snapshot.entitlements, STANDING_HOLDER, snapshot.takenAt],
    );
    return rows.map((r) => r.entitlement).sort();
  }

  return {
    /** Cedar (Throttle, AutoRestore as the orchestrator): automatic, or a person must confirm. Recorded. */
    async decideAnomalyThrottle(a: { nhiId: string; run: string; evidence: AnomalyEvidence[] }) {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const d = decideThrottle(deps.policy, { nhi: nhiFacts(nhi) });
      const decision: ThrottlePolicyEvidence = {
        automatic: d.automatic,
        needsConfirmation: d.needsConfirmation,
        reasons: d.reasons,
        autoRestoreAfterMinutes: d.autoRestoreAfterMinutes,
        autoRestoreReasons: d.autoRestoreReasons,
        determiningPolicies: d.determiningPolicies,
        policySetHash: d.policySetHash,
      };
      await audit(nhi.id, {
        stepId: `${a.run}:policy`,
        action: 'policy.throttle',
        outcome: d.automatic ? 'automatic' : 'needs_confirmation',
        decision,
        details: { status: nhi.status, criticality: nhi.criticality, tags: nhi.tags, evidence: a.evidence.map((e) => ({ source: e.source, observedRate: e.observedRate, baselineRate: e.baselineRate, minute: e.minute ?? null })) },
      });
      return { decision, nhi: { owner: nhi.owner, criticality: nhi.criticality, status: nhi.status, kind: nhi.kind } };
    },

    /** May this person approve a throttle, confirm it malicious, or clear it? (Policy: Throttle as that person.) */
    async checkAnomalyAnalyst(a: { nhiId: string; principal: string }) {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const d = canConfirmThrottle(deps.policy, { principal: { id: a.principal, roles: await principalRoles(a.principal) }, nhi: nhiFacts(nhi) });
      return { allowed: d.allowed, reasons: d.reasons, determiningPolicies: d.determiningPolicies };
    },

    /** The investigation incident (kind `anomaly`), keyed by an id the workflow chose: a retry adds nothing. */
    async openAnomalyIncident(a: { incidentId: string; nhiId: string; run: string; evidence: AnomalyEvidence[]; decision: ThrottlePolicyEvidence; timeline: TimelineEntry[] }) {
      const severity = a.decision.needsConfirmation ? 'high' : 'medium';
      await deps.pool.query(
        `INSERT INTO incidents (id, kind, status, nhi_id, source, severity, workflow_id, details, timeline)
         VALUES ($1, 'anomaly', 'open', $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET details = incidents.details || EXCLUDED.details, timeline = EXCLUDED.timeline`,
        [
          a.incidentId,
          a.nhiId,
          [...new Set(a.evidence.map((e) => e.source))].join(',') || 'anomaly',
          severity,
          currentWorkflowId(),
          JSON.stringify({ outcome: 'investigating', evidence: a.evidence, decision: a.decision }),
          JSON.stringify(a.timeline),
        ],
      );
      await audit(a.nhiId, { stepId: `${a.run}:incident-open`, action: 'anomaly.incident_open', outcome: 'open', details: { incidentId: a.incidentId, severity } });
    },

    async updateAnomalyIncident(a: {
      incidentId: string;
      nhiId: string;
      run: string;
      step: string;
      status: IncidentStatus;
      outcome: string;
      details?: Record<string, unknown>;
      timeline: TimelineEntry[];
      closed?: boolean;
    }) {
      await updateIncident(deps.pool, a.incidentId, { status: a.status, details: { outcome: a.outcome, ...a.details }, timeline: a.timeline, closed: a.closed });
      await audit(a.nhiId, { stepId: `${a.run}:incident-${a.step}`, action: `anomaly.incident_${a.step}`, outcome: a.outcome, details: { incidentId: a.incidentId, status: a.status } });
    },

    /** What clear restores: memberships, login, connection limit — taken before any change. */
    async snapshotForThrottle(a: { nhiId: string; run: string }): Promise<AccessSnapshot> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const snapshot = await atTarget(`snapshot of ${identity}`, () => connector.snapshot(identity));
      await audit(nhi.id, { stepId: `${a.run}:snapshot`, action: 'access.snapshot', outcome: 'taken', target: { connector: nhi.connector, identity }, readback: snapshot });
      return snapshot;
    },

    /**
     * Level 1: CONNECTION LIMIT and write-capable memberships removed. Level 2: also NOLOGIN and live
     * sessions ended. Verified by reading back and by re-applying the level (which must change
     * nothing). Inventory status becomes `throttled`.
     */
    async applyThrottle(a: { nhiId: string; run: string; level: 1 | 2; connectionLimit: number; snapshot: AccessSnapshot; actor: string }): Promise<ThrottleReadback> {
      const { nhi, connector, identity } = await target(a.nhiId);
      if (nhi.status === 'offboarding' || nhi.status === 'offboarded') {
        throw ApplicationFailure.nonRetryable(`${nhi.id} is ${nhi.status}: the offboarding owns its access now`, ErrorType.NhiNotActive);
      }
      const level = { connectionLimit: a.connectionLimit, removeWriteEntitlements: true, disableLogin: a.level === 2 };
      await atTarget(`throttling ${identity} (level ${a.level})`, () => connector.throttle(identity, level));
      let sessionsTerminated: number | undefined;
      if (a.level === 2) sessionsTerminated = (await atTarget(`ending the sessions of ${identity}`, () => connector.invalidateSessions(identity))).terminated;
      const after = await atTarget(`reading back ${identity}`, () => connector.readAccess(identity));
      // Closed loop: the level is a fixpoint — applying it again finds nothing left to change.
      const again = await atTarget(`re-applying level ${a.level} to ${identity}`, () => connector.throttle(identity, level));
      const left = a.level === 2 ? await atTarget(`listing the sessions of ${identity}`, () => connector.listSessions(identity)) : [];
      const fixpoint = again.canLogin === after.canLogin && again.connectionLimit === after.connectionLimit && sameSet(again.entitlements, after.entitlements);
      const verified = after.exists && fixpoint && after.connectionLimit === a.connectionLimit && (a.level === 1 || (!after.canLogin && left.length === 0));
      if (!verified) {
        throw enforcementFailed(`${identity} is not at throttle level ${a.level}: ${JSON.stringify({ after, again: { canLogin: again.canLogin, connectionLimit: again.connectionLimit, entitlements: again.entitlements }, sessions: left.length })}`);
      }
      await updateStatus(deps.pool, nhi.id, 'throttled', { from: ['active', 'throttled'] });
      const readback: ThrottleReadback = {
        level: a.level,
        at: now(),
        connectionLimit: after.connectionLimit,
        canLogin: after.canLogin,
        entitlements: after.entitlements,
        removed: a.snapshot.entitlements.filter((e) => !after.entitlements.includes(e)),
        ...(sessionsTerminated !== undefined ? { sessionsTerminated } : {}),
        verified,
      };
      await audit(nhi.id, {
        stepId: `${a.run}:throttle:l${a.level}`,
        actor: a.actor,
        action: 'access.throttle',
        outcome: `level_${a.level}`,
        target: { connector: nhi.connector, identity, ...level },
        readback,
      });
      return readback;
    },

    /**
     * Put access back exactly as the snapshot says (less memberships whose elevation has ended
     * meanwhile), read it back, and set the inventory status back to `active`. Retried until the
     * target agrees: a restore is never abandoned.
     */
    async restoreThrottle(a: { nhiId: string; run: string; snapshot: AccessSnapshot; actor: string; reason: string; step?: string }): Promise<RestoreReadback> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const excluded = await endedElevationGrants(nhi.id, a.snapshot);
      const wanted: AccessSnapshot = { ...a.snapshot, entitlements: a.snapshot.entitlements.filter((e) => !excluded.includes(e)) };
      let after: AccessState;
      try {
        after = await connector.restore(wanted);
      } catch (err) {
        throw enforcementFailed(`restoring ${identity} to its snapshot of ${a.snapshot.takenAt}`, err);
      }
      after = await atTarget(`reading back ${identity}`, () => connector.readAccess(identity));
      const exact = after.exists && after.canLogin === wanted.canLogin && after.connectionLimit === wanted.connectionLimit && sameSet(after.entitlements, wanted.entitlements);
      if (!exact) throw enforcementFailed(`${identity} is not at its snapshot after restore (now ${JSON.stringify(after)})`);
      await updateStatus(deps.pool, nhi.id, 'active', { from: 'throttled' });
      const readback: RestoreReadback = { at: now(), after, excluded, exact };
      await audit(nhi.id, {
        stepId: `${a.run}:${a.step ?? 'restore'}`,
        actor: a.actor,
        action: 'access.restore',
        outcome: 'restored',
        target: { connector: nhi.connector, identity, snapshotTakenAt: a.snapshot.takenAt },
        readback,
        details: { reason: a.reason, snapshot: a.snapshot },
      });
      return readback;
    },

    /**
     * Before containment at level 2: the containment proves the new credential by logging in, so
     * login is allowed again (connection limit and write removal stay). The old credential is
     * rotated moments later.
     */
    async allowLoginForContainment(a: { nhiId: string; run: string }) {
      const { nhi, connector, identity } = await target(a.nhiId);
      const { changed } = await atTarget(`enabling login of ${identity}`, () => connector.setLogin(identity, true));
      const after = await atTarget(`reading back ${identity}`, () => connector.readAccess(identity));
      if (!after.canLogin) throw enforcementFailed(`${identity} still refuses login`);
      await audit(nhi.id, { stepId: `${a.run}:login-for-containment`, action: 'login.enable', outcome: 'enabled_for_containment', target: { connector: nhi.connector, identity, changed }, readback: after });
      return { changed, after };
    },

    /** A containment this throttle joined (not its child): is it still running, and in which state? */
    async containmentProgress(a: { workflowId: string }): Promise<{ running: boolean; state?: string; status: string }> {
      if (!deps.temporal) throw ApplicationFailure.nonRetryable('this worker has no Temporal client to follow the containment with', ErrorType.InvalidRequest);
      const h = deps.temporal.client.workflow.getHandle(a.workflowId);
      try {
        const d = await h.describe();
        const running = d.status.name === 'RUNNING';
        const state = await h.query(leakStatusQuery).then((s) => s.state, () => undefined);
        return { running, state, status: d.status.name };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { running: false, status: 'NOT_FOUND' };
        throw err;
      }
    },

    /**
     * The collector: for every inventoried NHI (not offboarded), its live sessions at the target —
     * count = open sessions + sessions opened within the interval — into this minute's bucket (once
     * per minute), then the detector; anomalies start or join throttles.
     */
    async collectUsage(input: UsageCollectorInput): Promise<UsageCollectorResult> {
      const settings = resolveDetectorSettings(input.detector);
      const sampledAt = Date.now();
      const minute = minuteOf(sampledAt);
      const since = sampledAt - input.intervalSeconds * 1000;
      const { rows } = await deps.pool.query<{ id: string; connector: string; external_ref: string; usage_baseline: number | null; status: string }>(
        `SELECT id, connector, external_ref, usage_baseline, status FROM nhis WHERE status <> 'offboarded' ORDER BY id`,
      );
      const samples: UsageSample[] = [];
      const skipped: string[] = [];
      const errors: { nhiId: string; error: string }[] = [];
      const detections: Detection[] = [];
      for (const r of rows) {
        Context.current().heartbeat({ nhiId: r.id });
        try {
          const sessions = await deps.connectors.get(r.connector).listSessions(r.external_ref);
          const newSessions = sessions.filter((x) => Date.parse(x.backendStart) >= since).length;
          const sample: UsageSample = { nhiId: r.id, sessions: sessions.length, newSessions, count: sessions.length + newSessions };
          if (!(await recordCollectorSample(deps.pool, r.id, minute, sample.count, { sessions: sample.sessions, newSessions }))) {
            skipped.push(r.id);
            continue;
          }
          samples.push(sample);
          detections.push(await detectNhi(deps.pool, { id: r.id, usageBaseline: r.usage_baseline, status: r.status }, minute, settings));
        } catch (err) {
          // One identity the connector cannot read (gone, not managed) does not stop the others.
          if (err instanceof PermanentConnectorError && err.code !== ConnectorErrorCode.InsufficientPrivilege) {
            errors.push({ nhiId: r.id, error: err.message });
            continue;
          }
          if (err instanceof PermanentConnectorError) throw ApplicationFailure.nonRetryable(err.message, ErrorType.PermanentConnector);
          throw err;
        }
      }
      const raised = await raiseDetections(deps.pool, deps.temporal, detections, 'collector', 'collector', input.anomaly);
      return {
        sampledAt: new Date(sampledAt).toISOString(),
        minute: new Date(minute).toISOString(),
        samples,
        skipped,
        anomalies: raised.map((x) => ({ nhiId: x.nhiId, workflowId: x.workflowId, observedRate: x.observedRate, threshold: x.threshold, ...(x.error ? { error: x.error } : {}) })),
        errors,
      };
    },
  };
}
