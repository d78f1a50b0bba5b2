// Leak containment activities. Short steps meant to run as local activities: each is idempotent
// (a retry or a re-execution after a worker crash repeats nothing that was done), each audits
// itself, and each reads the target back. Credential values exist only inside these functions:
// what they return and record are secret-store references and sha256 fingerprints.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { PermanentConnectorError, type Connector } from '../connectors/types';
import { appendAudit } from '../lib/audit';
import { updateIncident, upsertContainmentIncident } from '../lib/incidents';
import { generateCredential } from '../lib/secret-store';
import { ErrorType } from '../workflows/errors';
import { JIT_WORKFLOW_TYPE, revokeUpdate } from '../workflows/jitElevation.contract';
import type { ContainmentVerification, ElevationEnded, LeakAlert, LeakStatus, RotationSummary, TimelineEntry } from '../workflows/leakContainment.contract';
import { currentWorkflowId, loadNhi, type NhiRecord } from './common';
import type { ActivityDeps } from './deps';

export const LEAK_ACTOR = 'leak-containment';

interface RotationRow {
  rotation_id: string;
  nhi_id: string;
  old_ref: string | null;
  new_ref: string;
  status: 'staged' | 'applied' | 'activated' | 'discarded';
  applied_at: Date | null;
}

/** Connector failures that retrying cannot fix stop the retries at once (and escalate). */
async function atTarget<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof PermanentConnectorError) {
      throw ApplicationFailure.create({ message: `${what}: ${err.message}`, type: ErrorType.PermanentConnector, nonRetryable: true, details: [{ code: err.code }] });
    }
    throw err;
  }
}

const visibilityLiteral = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
const firstOf = (alerts: LeakAlert[], kind: string) => alerts.flatMap((a) => a.fingerprints).find((f) => f.startsWith(`${kind}:`)) ?? null;
/** What the incident keeps of each alert (everything but the dedupe key). */
const alertRecord = ({ key: _key, ...a }: LeakAlert) => a;

export function createLeakActivities(deps: ActivityDeps) {
  async function target(nhiId: string): Promise<{ nhi: NhiRecord; connector: Connector }> {
    const nhi = await loadNhi(deps.pool, nhiId);
    return { nhi, connector: deps.connectors.get(nhi.connector) };
  }

  async function rotationRow(rotationId: string): Promise<RotationRow | undefined> {
    const { rows } = await deps.pool.query<RotationRow>(
      'SELECT rotation_id, nhi_id, old_ref, new_ref, status, applied_at FROM rotations WHERE rotation_id = $1',
      [rotationId],
    );
    return rows[0];
  }

  async function summary(row: RotationRow): Promise<RotationSummary> {
    const [oldRef, newRef] = await Promise.all([row.old_ref ? deps.secrets.get(row.old_ref) : null, deps.secrets.get(row.new_ref)]);
    if (!newRef) throw new Error(`rotation ${row.rotation_id} refers to a missing secret`);
    return {
      rotationId: row.rotation_id,
      oldRef: row.old_ref,
      oldFingerprint: oldRef?.fingerprint ?? null,
      newRef: row.new_ref,
      newFingerprint: newRef.fingerprint,
      newVersion: newRef.version,
      ...(row.applied_at ? { appliedAt: row.applied_at.toISOString() } : {}),
      activated: row.status === 'activated',
    };
  }

  const audit = (incidentId: string, step: string, e: { nhiId: string; action: string; outcome: string; target?: unknown; readback?: unknown; details?: Record<string, unknown> }) =>
    appendAudit(deps.pool, { workflowId: currentWorkflowId(), stepId: `${incidentId}:${step}`, scenario: 'leak', actor: LEAK_ACTOR, ...e });

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
      const query = `WorkflowType = ${visibilityLiteral(JIT_WORKFLOW_TYPE)} AND NhiId = ${visibilityLiteral(a.nhiId)} AND ExecutionStatus = "Running"`;
      const ids: string[] = [];
      for await (const wf of client.workflow.list({ query })) ids.push(wf.workflowId);
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
     * Generate the new credential and keep it as a pending version. Keyed by rotationId: a retry
     * returns the version staged before instead of generating another.
     */
    async stageLeakCredential(a: { incidentId: string; nhiId: string; rotationId: string }): Promise<RotationSummary> {
      const existing = await rotationRow(a.rotationId);
      if (existing) return summary(existing);
      await loadNhi(deps.pool, a.nhiId);
      const old = await deps.secrets.active(a.nhiId);
      const pending = await deps.secrets.putPending(a.nhiId, generateCredential());
      const { rows } = await deps.pool.query<RotationRow>(
        `INSERT INTO rotations (rotation_id, nhi_id, workflow_id, incident_id, old_ref, new_ref, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'staged') ON CONFLICT (rotation_id) DO NOTHING
         RETURNING rotation_id, nhi_id, old_ref, new_ref, status, applied_at`,
        [a.rotationId, a.nhiId, currentWorkflowId(), a.incidentId, old?.ref ?? null, pending.ref],
      );
      if (!rows[0]) {
        // A concurrent attempt staged first: keep its version, drop ours.
        await deps.secrets.discard(pending.ref);
        return summary((await rotationRow(a.rotationId))!);
      }
      const s = await summary(rows[0]);
      await audit(a.incidentId, `stage:${a.rotationId}`, {
        nhiId: a.nhiId,
        action: 'credential.stage',
        outcome: 'pending',
        details: { rotationId: a.rotationId, newRef: s.newRef, newFingerprint: s.newFingerprint, newVersion: s.newVersion, oldRef: s.oldRef, oldFingerprint: s.oldFingerprint },
      });
      return s;
    },

    /**
     * Set the staged credential on the target, prove it works (a real login), then make it the
     * active version (the old one is retired). Setting the same value again is harmless, so a
     * re-execution after a crash converges on one rotation.
     */
    async applyLeakCredential(a: { incidentId: string; nhiId: string; rotationId: string }): Promise<RotationSummary> {
      const row = await rotationRow(a.rotationId);
      if (!row) throw ApplicationFailure.nonRetryable(`rotation ${a.rotationId} was never staged`, ErrorType.InvalidRequest);
      if (row.status === 'discarded') throw ApplicationFailure.nonRetryable(`rotation ${a.rotationId} was discarded`, ErrorType.InvalidRequest);
      const { nhi, connector } = await target(a.nhiId);
      if (row.status !== 'activated') {
        const value = await deps.secrets.reveal(row.new_ref);
        await atTarget(`setting the credential of ${nhi.externalRef}`, () => connector.setCredential(nhi.externalRef, value));
        const probe = await atTarget(`probing ${nhi.externalRef}`, () => connector.probe(nhi.externalRef, value));
        if (probe.access !== 'granted') {
          throw ApplicationFailure.retryable(`the new credential of ${nhi.externalRef} is refused (${probe.code ?? 'denied'})`, ErrorType.VerificationFailed);
        }
        // applied_at: sessions older than this were opened with the old credential.
        await deps.pool.query(`UPDATE rotations SET status = 'applied', applied_at = COALESCE(applied_at, now()) WHERE rotation_id = $1 AND status = 'staged'`, [a.rotationId]);
        await deps.secrets.activate(row.new_ref);
        await deps.pool.query(`UPDATE rotations SET status = 'activated', activated_at = COALESCE(activated_at, now()) WHERE rotation_id = $1`, [a.rotationId]);
      }
      const s = await summary((await rotationRow(a.rotationId))!);
      await audit(a.incidentId, `rotate:${a.rotationId}`, {
        nhiId: a.nhiId,
        action: 'credential.rotate',
        outcome: 'rotated',
        target: { connector: nhi.connector, identity: nhi.externalRef },
        readback: { newCredential: 'granted', appliedAt: s.appliedAt },
        details: { rotationId: a.rotationId, newRef: s.newRef, newFingerprint: s.newFingerprint, newVersion: s.newVersion, retiredRef: s.oldRef, retiredFingerprint: s.oldFingerprint },
      });
      return s;
    },

    /**
     * Compensation for a rotation that did not complete. Never strands the identity: if the target
     * already accepts the staged credential (it failed after the change), it is activated instead;
     * otherwise the pending version is discarded and the old credential stays as it was.
     */
    async undoStagedCredential(a: { incidentId: string; nhiId: string; rotationId: string }): Promise<{ outcome: 'discarded' | 'activated_instead' | 'nothing_staged' }> {
      const row = await rotationRow(a.rotationId);
      if (!row || row.status === 'discarded') return { outcome: row ? 'discarded' : 'nothing_staged' };
      if (row.status === 'activated') return { outcome: 'activated_instead' };
      const { nhi, connector } = await target(a.nhiId);
      const probe = await connector.probe(nhi.externalRef, await deps.secrets.reveal(row.new_ref)).catch(() => ({ access: 'denied' as const }));
      let outcome: 'discarded' | 'activated_instead';
      if (probe.access === 'granted') {
        await deps.pool.query(`UPDATE rotations SET applied_at = COALESCE(applied_at, now()) WHERE rotation_id = $1`, [a.rotationId]);
        await deps.secrets.activate(row.new_ref);
        await deps.pool.query(`UPDATE rotations SET status = 'activated', activated_at = COALESCE(activated_at, now()) WHERE rotation_id = $1`, [a.rotationId]);
        outcome = 'activated_instead';
      } else {
        await deps.secrets.discard(row.new_ref);
        await deps.pool.query(`UPDATE rotations SET status = 'discarded' WHERE rotation_id = $1`, [a.rotationId]);
        outcome = 'discarded';
      }
      await audit(a.incidentId, `undo:${a.rotationId}`, {
        nhiId: a.nhiId,
        action: 'credential.rotate_compensate',
        outcome,
        readback: { stagedCredential: probe.access },
        details: { rotationId: a.rotationId, ref: row.new_ref, keptRef: outcome === 'discarded' ? row.old_ref : row.new_ref },
      });
      return { outcome };
    },

    /** Terminate every session of the identity (after the rotation, so none can come back with the old secret). */
    async invalidateLeakedSessions(a: { incidentId: string; nhiId: string; rotationId: string }): Promise<{ terminated: number }> {
      const { nhi, connector } = await target(a.nhiId);
      const { terminated } = await atTarget(`ending the sessions of ${nhi.externalRef}`, () => connector.invalidateSessions(nhi.externalRef));
      const left = await atTarget(`listing the sessions of ${nhi.externalRef}`, () => connector.listSessions(nhi.externalRef));
      await audit(a.incidentId, `sessions:${a.rotationId}`, {
        nhiId: a.nhiId,
        action: 'sessions.invalidate',
        outcome: 'terminated',
        target: { connector: nhi.connector, identity: nhi.externalRef },
        readback: { terminated, sessionsNow: left.length },
      });
      return { terminated };
    },

    /**
     * Closed loop: the retired credential is denied at the target, the new one is granted, and no
     * session from before the rotation is alive. Throws (retryably) until all three hold.
     */
    async verifyLeakContainment(a: { incidentId: string; nhiId: string; rotationId: string }): Promise<ContainmentVerification> {
      const row = await rotationRow(a.rotationId);
      if (!row || row.status !== 'activated' || !row.applied_at) throw ApplicationFailure.nonRetryable(`rotation ${a.rotationId} is not complete`, ErrorType.InvalidRequest);
      const { nhi, connector } = await target(a.nhiId);
      let oldCredential: ContainmentVerification['oldCredential'] = 'none';
      let oldCode: string | undefined;
      if (row.old_ref) {
        // The old value was retired, not erased: it is revealed here only to prove it no longer works.
        const old = await deps.secrets.reveal(row.old_ref).catch(() => undefined);
        if (old !== undefined) {
          const p = await atTarget(`probing ${nhi.externalRef}`, () => connector.probe(nhi.externalRef, old));
          oldCredential = p.access;
          oldCode = p.code;
        }
      }
      const fresh = await atTarget(`probing ${nhi.externalRef}`, async () => connector.probe(nhi.externalRef, await deps.secrets.reveal(row.new_ref)));
      const sessions = await atTarget(`listing the sessions of ${nhi.externalRef}`, () => connector.listSessions(nhi.externalRef));
      const appliedAt = row.applied_at.getTime();
      const preRotationSessions = sessions.filter((x) => Date.parse(x.backendStart) < appliedAt).length;
      const v: ContainmentVerification = {
        oldCredential,
        ...(oldCode ? { oldCode } : {}),
        newCredential: fresh.access,
        preRotationSessions,
        checkedAt: new Date().toISOString(),
      };
      const ok = oldCredential !== 'granted' && fresh.access === 'granted' && preRotationSessions === 0;
      if (!ok) {
        throw ApplicationFailure.retryable(
          `containment of ${nhi.externalRef} not verified: old credential ${oldCredential}, new ${fresh.access}, ${preRotationSessions} pre-rotation session(s)`,
          ErrorType.VerificationFailed,
        );
      }
      await audit(a.incidentId, `verify:${a.rotationId}`, {
        nhiId: a.nhiId,
        action: 'leak.verify',
        outcome: 'verified',
        target: { connector: nhi.connector, identity: nhi.externalRef },
        readback: v,
      });
      return v;
    },

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
