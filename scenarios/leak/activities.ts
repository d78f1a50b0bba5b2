// Leak containment activities. Short steps meant to run as local activities: each is idempotent
// (a retry or a re-execution after a worker crash repeats nothing that was done), each audits
// itself, and each reads the target back. Credential values exist only inside these functions:
// what they return and record are secret-store references and sha256 fingerprints. Here: the
// incident, ending elevations and the quarantine; the credential rotation is in rotation.ts.
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { runningElevations } from '../../enforcement/handoffs';
import { commitIntent, releaseIntents } from '../../enforcement/intents';
import { reconcile, type VerifiedAccess } from '../../enforcement/reconciler';
import { targetFailure } from '../../enforcement/target-failures';
import { updateIncident, upsertContainmentIncident } from '../../lib/incidents';
import { revokeUpdate } from '../jit/contract';
import type { ElevationEnded, LeakAlert, LeakStatus, QuarantineSummary, TimelineEntry } from './contract';
import { currentWorkflowId, loadNhi } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';
import { LEAK_ACTOR, leakSupport } from './activity-support';
import { createRotationActivities } from './rotation';

export { LEAK_ACTOR } from './activity-support';

// Containment stops on a permanent target failure: the workflow escalates and waits for a retry.
const reconciled = (what: string, op: () => Promise<VerifiedAccess>) =>
  op().catch((err: unknown) => {
    throw targetFailure(what, err, 'stop-on-permanent');
  });

function quarantineSummary(v: VerifiedAccess, owner: string, state: QuarantineSummary['state']): QuarantineSummary {
  return {
    state,
    withheld: v.desired.withheld.filter((w) => w.by.includes(owner)).map((w) => w.entitlement),
    entitlements: v.observed.entitlements,
    checkedAt: v.checkedAt,
  };
}

const firstOf = (alerts: LeakAlert[], kind: string) => alerts.flatMap((a) => a.fingerprints).find((f) => f.startsWith(`${kind}:`)) ?? null;
/** What the incident keeps of each alert (everything but the dedupe key). */
const alertRecord = ({ key: _key, ...a }: LeakAlert) => a;

export function createLeakActivities(deps: ActivityDeps) {
  const { audit } = leakSupport(deps);

  return {
    /** Open (or adopt a triaged) incident for the containment; returns what the workflow needs to know of the NHI. */
    async openLeakIncident(a: { incidentId: string; nhiId: string; alerts: LeakAlert[]; severity: string; timeline: TimelineEntry[] }) {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const sources = [...new Set(a.alerts.map((x) => x.source))].join(',');
      await upsertContainmentIncident(deps.pool, {
        id: a.incidentId,
        nhiId: a.nhiId,
        workflowId: currentWorkflowId(),
        source: sources,
        severity: a.severity,
        fingerprint: firstOf(a.alerts, 'sha256') ?? firstOf(a.alerts, 'hmsl'),
        details: { alerts: a.alerts.map(alertRecord), outcome: 'containing' },
        timeline: a.timeline,
      });
      await audit(a.incidentId, 'open', {
        nhiId: a.nhiId,
        action: 'leak.incident_open',
        outcome: 'open',
        details: { incidentId: a.incidentId, alerts: a.alerts.map((x) => ({ externalId: x.externalId, action: x.action, severity: x.severity, matchedBy: x.matchedBy })) },
      });
      return { criticality: nhi.criticality, status: nhi.status, connector: nhi.connector, identity: nhi.externalRef };
    },

    /**
     * End elevated access: every running JIT elevation of the NHI gets the revoke update; each
     * answers once its revocation is verified (or is still revoking when the wait is over: the
     * elevation never abandons it).
     */
    async endLeakElevations(a: { incidentId: string; nhiId: string; waitMs: number }): Promise<ElevationEnded[]> {
      if (!deps.temporal) return [];
      const { client } = deps.temporal;
      const ids = await runningElevations(client, deps.pool, a.nhiId);
      const ended = await Promise.all(
        ids.map(async (workflowId): Promise<ElevationEnded> => {
          try {
            const update = await client.workflow.getHandle(workflowId).startUpdate(revokeUpdate, {
              args: [{ by: LEAK_ACTOR, byWorkflow: currentWorkflowId(), reason: `leak containment (incident ${a.incidentId})` }],
              waitForStage: 'ACCEPTED',
            });
            const timer = new Promise<null>((r) => setTimeout(() => r(null), a.waitMs).unref());
            const result = await Promise.race([update.result(), timer]);
            return { workflowId, outcome: result ? result.state : 'revoking' };
          } catch (err) {
            // Already ending or ended: its own workflow is revoking (or has revoked) it.
            if (err instanceof WorkflowUpdateFailedError) return { workflowId, outcome: 'already_ending' };
            if (err instanceof WorkflowNotFoundError) return { workflowId, outcome: 'finished' };
            throw err;
          }
        }),
      );
      await audit(a.incidentId, 'elevations', {
        nhiId: a.nhiId,
        action: 'leak.end_elevations',
        outcome: ended.length ? 'revoked' : 'none_running',
        readback: ended,
      });
      return ended;
    },

    /**
     * Quarantine the NHI while the containment runs: a restrict intent owned by this workflow,
     * reconciled. It withholds what grants (elevations) add beyond the baseline; the baseline and
     * login stay. Idempotent (the same intent again changes nothing).
     */
    async quarantineLeakNhi(a: { incidentId: string; nhiId: string }): Promise<QuarantineSummary> {
      const workflowId = currentWorkflowId();
      const v = await reconciled(`quarantining ${a.nhiId}`, () =>
        reconcile(
          deps,
          a.nhiId,
          { workflowId, stepId: `${a.incidentId}:quarantine`, scenario: 'leak', actor: LEAK_ACTOR, reason: `leak containment (incident ${a.incidentId})` },
          (c) => commitIntent(c, a.nhiId, workflowId, { kind: 'restrict', restriction: 'quarantine' }),
        ),
      );
      return quarantineSummary(v, workflowId, 'in_force');
    },

    /** End the quarantine: release this workflow's intent and reconcile (what elevations hold comes back). */
    async releaseLeakQuarantine(a: { incidentId: string; nhiId: string }): Promise<QuarantineSummary> {
      const workflowId = currentWorkflowId();
      const v = await reconciled(`releasing the quarantine of ${a.nhiId}`, () =>
        reconcile(
          deps,
          a.nhiId,
          { workflowId, stepId: `${a.incidentId}:quarantine_release`, scenario: 'leak', actor: LEAK_ACTOR, reason: `leak containment ended (incident ${a.incidentId})` },
          async (c) => {
            await releaseIntents(c, a.nhiId, workflowId, { kind: 'restrict', subject: 'quarantine' });
          },
        ),
      );
      return quarantineSummary(v, workflowId, 'released');
    },

    ...createRotationActivities(deps),

    /** Close the incident with its timeline and every alert that joined. */
    async closeLeakIncident(a: { incidentId: string; status: LeakStatus; mergedIncidentIds: string[] }): Promise<void> {
      const s = a.status;
      const details = {
        outcome: 'contained',
        alerts: s.alerts.map(alertRecord),
        duplicates: s.duplicates,
        rotation: s.rotation ?? null,
        verification: s.verification ?? null,
        elevations: s.elevations ?? [],
        quarantine: s.quarantine ?? null,
        sessionsTerminated: s.sessionsTerminated ?? 0,
        detectedToContainedMs: s.detectedToContainedMs ?? null,
        receivedToContainedMs: s.receivedToContainedMs ?? null,
        escalated: s.escalated,
      };
      await updateIncident(deps.pool, a.incidentId, { status: 'closed', details, timeline: s.timeline, severity: s.severity, closed: true });
      for (const id of a.mergedIncidentIds) {
        await updateIncident(deps.pool, id, { status: 'closed', details: { outcome: 'contained', mergedInto: a.incidentId }, closed: true });
      }
      await audit(a.incidentId, 'close', {
        nhiId: s.nhiId,
        action: 'leak.incident_close',
        outcome: 'contained',
        readback: s.verification ?? null,
        details: { incidentId: a.incidentId, detectedToContainedMs: s.detectedToContainedMs ?? null, receivedToContainedMs: s.receivedToContainedMs ?? null, alerts: s.alerts.length, duplicates: s.duplicates, mergedIncidentIds: a.mergedIncidentIds },
      });
    },

    /** The incident stays open, marked escalated, with the reason. */
    async escalateLeakIncident(a: { incidentId: string; nhiId: string; reason: string; escalation: number; timeline: TimelineEntry[]; alerts: LeakAlert[] }): Promise<void> {
      await updateIncident(deps.pool, a.incidentId, { status: 'escalated', details: { outcome: 'escalated', failure: a.reason, alerts: a.alerts.map(alertRecord) }, timeline: a.timeline });
      await audit(a.incidentId, `escalate:${a.escalation}`, {
        nhiId: a.nhiId,
        action: 'leak.escalate',
        outcome: 'escalated',
        details: { incidentId: a.incidentId, reason: a.reason },
      });
    },
  };
}
