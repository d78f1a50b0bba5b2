// Anomaly throttling activities: the policy decision, the throttle levels and their release (each an
// intent of this workflow, applied by the reconciler, verified from the read-back and audited), the
// investigation incident, and the usage collector that turns the estate's live sessions into usage
// buckets and runs the detector.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ConnectorErrorCode, PermanentConnectorError, type Connector } from '../../connectors/types';
import { commitIntent, releaseIntents } from '../../enforcement/intents';
import { reconcile, type VerifiedAccess } from '../../enforcement/reconciler';
import { atTarget as atTargetUnder, enforcementFailed, targetFailure } from '../../enforcement/target-failures';
import { minuteOf, resolveDetectorSettings } from './detector';
import { appendAudit, type AuditEventInput } from '../../lib/audit';
import { updateIncident, type IncidentStatus } from '../../lib/incidents';
import { updateStatus } from '../../lib/inventory';
import { canConfirmThrottle, decideThrottle } from './policy';
import { detectNhi, raiseDetections, recordCollectorSample, type Detection } from './usage';
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
} from './contract';
import { ErrorType } from '../../workflows/errors';
import { statusQuery as leakStatusQuery } from '../leak/contract';
import { currentWorkflowId, loadNhi, type NhiRecord, principalRoles, verifiedPrincipal } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';
import type { Authority } from '../../lib/authority';

const now = () => new Date().toISOString();
const sameSet = (a: readonly string[], b: readonly string[]) => [...a].sort().join('\n') === [...b].sort().join('\n');

// Throttle steps stop on a permanent target failure: the workflow escalates the case to a person.
const atTarget = <T>(what: string, op: () => Promise<T>) => atTargetUnder(what, 'stop-on-permanent', op);
const reconciled = (what: string, op: () => Promise<VerifiedAccess>) =>
  op().catch((err: unknown) => {
    throw targetFailure(what, err, 'stop-on-permanent');
  });

const nhiFacts = (nhi: NhiRecord) => ({ id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status });

export function createAnomalyActivities(deps: ActivityDeps) {
  async function target(nhiId: string): Promise<{ nhi: NhiRecord; connector: Connector; identity: string }> {
    const nhi = await loadNhi(deps.pool, nhiId);
    return { nhi, connector: deps.connectors.get(nhi.connector), identity: nhi.externalRef };
  }

  function audit(nhiId: string, e: Omit<AuditEventInput, 'workflowId' | 'scenario' | 'nhiId' | 'actor'> & { actor?: string }) {
    return appendAudit(deps.pool, { actor: 'system', ...e, workflowId: currentWorkflowId(), scenario: ANOMALY_SCENARIO, nhiId });
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
    /**
     * May this principal clear, confirm or approve a throttle? Clear and confirm need the principal
     * signed by the API (clear gives access back; confirm rotates the credential). Approving a
     * throttle only narrows access: unsigned (the Temporal UI) it is honoured as `temporal-ui`.
     */
    async checkAnomalyAnalyst(a: { nhiId: string; principal: string; message?: 'clear' | 'confirm' | 'approveThrottle'; authority?: Authority }): Promise<{ allowed: boolean; reasons: string[]; determiningPolicies: string[]; actor?: string }> {
      if (a.message === 'approveThrottle' && !a.authority) return { allowed: true, reasons: [`unsigned (claimed by ${a.principal}): a throttle only narrows access`], determiningPolicies: [], actor: 'temporal-ui' };
      await verifiedPrincipal(deps, a.authority, a.message ?? 'clear', a.principal);
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const d = canConfirmThrottle(deps.policy, { principal: { id: a.principal, roles: await principalRoles(deps.pool, a.principal) }, nhi: nhiFacts(nhi) });
      return { allowed: d.allowed, reasons: d.reasons, determiningPolicies: d.determiningPolicies };
    },

    /** May a supersede end this throttle (and so release it)? Only while the NHI is being offboarded. */
    async checkSupersede(a: { nhiId: string }): Promise<{ allowed: boolean; status: string }> {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      return { allowed: nhi.status === 'offboarding' || nhi.status === 'offboarded', status: nhi.status };
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

    /**
     * Level 1 or 2 as an intent: a `throttle` restriction owned by this workflow (committing level 2
     * replaces level 1), then the reconciler, then verified from the read-back — the connection
     * limit at or below the level's, no write-capable entitlement left, each withheld one's
     * read-only form kept (read access stays); level 2 also: login refused and no session left.
     * Inventory status becomes `throttled`.
     */
    async applyThrottle(a: { nhiId: string; run: string; level: 1 | 2; connectionLimit: number; actor: string }): Promise<ThrottleReadback> {
      const { nhi, connector, identity } = await target(a.nhiId);
      if (nhi.status === 'offboarding' || nhi.status === 'offboarded') {
        throw ApplicationFailure.nonRetryable(`${nhi.id} is ${nhi.status}: the offboarding owns its access now`, ErrorType.NhiNotActive);
      }
      const owner = currentWorkflowId();
      const intent = { kind: 'restrict', restriction: 'throttle', level: a.level, connectionLimit: a.connectionLimit } as const;
      const v = await reconciled(`throttling ${identity} (level ${a.level})`, () =>
        reconcile(deps, nhi.id, { workflowId: owner, stepId: `${a.run}:throttle:l${a.level}`, scenario: ANOMALY_SCENARIO, actor: a.actor, reason: `anomaly throttle level ${a.level}` }, (c) =>
          commitIntent(c, nhi.id, owner, intent),
        ),
      );
      let sessionsTerminated: number | undefined;
      let sessionsLeft = 0;
      if (a.level === 2 && v.observed.exists) {
        // Sessions are actions, not state: ended through the connector once login is refused.
        sessionsTerminated = (await atTarget(`ending the sessions of ${identity}`, () => connector.invalidateSessions(identity))).terminated;
        sessionsLeft = (await atTarget(`listing the sessions of ${identity}`, () => connector.listSessions(identity))).length;
      }
      const catalogue = connector.entitlementCatalogue();
      const observed = v.observed;
      const removed = v.desired.withheld.filter((w) => w.by.includes(owner)).map((w) => w.entitlement);
      // The read-only forms the desired access keeps (none for a grant another restriction withholds whole).
      const readOnly = [
        ...new Set(removed.map((e) => catalogue.readOnlyForm[e]).filter((e): e is string => e !== undefined && !catalogue.writeCapable.includes(e) && v.desired.entitlements.includes(e))),
      ].sort();
      const problems = [
        !observed.exists && 'the identity is gone',
        !v.desired.restrictedBy.includes(owner) && 'its throttle is not among the restrictions in force',
        !(observed.connectionLimit >= 0 && observed.connectionLimit <= a.connectionLimit) && `connection limit ${observed.connectionLimit}, not at most ${a.connectionLimit}`,
        ...observed.entitlements.filter((e) => catalogue.writeCapable.includes(e)).map((e) => `write-capable ${e} still held`),
        ...readOnly.filter((e) => !observed.entitlements.includes(e)).map((e) => `read-only ${e} missing`),
        a.level === 2 && observed.canLogin && 'login still allowed',
        a.level === 2 && sessionsLeft > 0 && `${sessionsLeft} session(s) still open`,
      ].filter((x): x is string => typeof x === 'string');
      if (problems.length) throw enforcementFailed(`${identity} is not at throttle level ${a.level}: ${problems.join('; ')} (read back ${JSON.stringify(observed)})`);
      await updateStatus(deps.pool, nhi.id, 'throttled', { from: ['active', 'throttled'] });
      const readback: ThrottleReadback = {
        level: a.level,
        at: now(),
        connectionLimit: observed.connectionLimit,
        canLogin: observed.canLogin,
        entitlements: observed.entitlements,
        removed,
        keptReadOnly: readOnly,
        ...(sessionsTerminated !== undefined ? { sessionsTerminated } : {}),
        verified: true,
      };
      await audit(nhi.id, {
        stepId: `${a.run}:throttle:l${a.level}`,
        actor: a.actor,
        action: 'access.throttle',
        outcome: `level_${a.level}`,
        target: { connector: nhi.connector, identity, intent },
        decision: { withheld: v.desired.withheld, restrictedBy: v.desired.restrictedBy },
        readback,
      });
      return readback;
    },

    /**
     * End the throttle: release every intent this workflow holds on the NHI, reconcile, and verify
     * from the read-back that none of its restrictions is in force and that the target holds what
     * the other intents want (a live elevation stays; another scenario's restriction stays).
     * Inventory status back to `active`. Retried until the target agrees: never abandoned.
     */
    async restoreThrottle(a: { nhiId: string; run: string; actor: string; reason: string; step?: string }): Promise<RestoreReadback> {
      const { nhi, identity } = await target(a.nhiId);
      const owner = currentWorkflowId();
      const step = a.step ?? 'restore';
      const v = await reconciled(`releasing the throttle of ${identity}`, () =>
        reconcile(deps, nhi.id, { workflowId: owner, stepId: `${a.run}:${step}`, scenario: ANOMALY_SCENARIO, actor: a.actor, reason: a.reason }, (c) =>
          releaseIntents(c, nhi.id, owner).then(() => undefined),
        ),
      );
      const { desired, observed } = v;
      if (desired.restrictedBy.includes(owner)) throw enforcementFailed(`the throttle of ${identity} is still in force after its release`);
      const exact =
        observed.exists && observed.canLogin === desired.canLogin && observed.connectionLimit === desired.connectionLimit && sameSet(observed.entitlements, desired.entitlements);
      if (observed.exists && !exact) throw enforcementFailed(`${identity} is not at what its other intents want (now ${JSON.stringify(observed)})`);
      await updateStatus(deps.pool, nhi.id, 'active', { from: 'throttled' });
      const readback: RestoreReadback = {
        at: now(),
        after: observed,
        restrictedBy: desired.restrictedBy,
        withheld: desired.withheld,
        exact,
      };
      await audit(nhi.id, {
        stepId: `${a.run}:${step}`,
        actor: a.actor,
        action: 'access.restore',
        outcome: observed.exists ? 'restored' : 'identity_gone',
        target: { connector: nhi.connector, identity },
        decision: { desired: { entitlements: desired.entitlements, canLogin: desired.canLogin, connectionLimit: desired.connectionLimit }, restrictedBy: desired.restrictedBy },
        readback,
        details: { reason: a.reason },
      });
      return readback;
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
