// Offboarding activities: policy, inventory status, ending the NHI's other scenarios, snapshot,
// disable (login, entitlements, sessions), proof, exact restore, finalisation and watch re-checks.
// Each step is idempotent, reads the target back before it reports success, and is audited.
// Secret values are revealed only inside the proof and restore probes and never leave them.
import { Context } from '@temporalio/activity';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ConnectorErrorCode, PermanentConnectorError, type AccessSnapshot, type AccessState, type Connector } from '../connectors/types';
import { appendAudit, type AuditEventInput } from '../lib/audit';
import { withTransaction } from '../lib/db';
import { updateStatus } from '../lib/inventory';
import { decideOffboard } from '../lib/policy-decisions';
import type { SecretRef } from '../lib/secret-store';
import { ErrorType } from '../workflows/errors';
import { ANOMALY_WORKFLOW_TYPE, supersedeSignal } from '../workflows/anomalyThrottling.contract';
import { JIT_WORKFLOW_TYPE, revokeUpdate } from '../workflows/jitElevation.contract';
import {
  OFFBOARDING_SCENARIO,
  type Attestation,
  type AttestationCheck,
  type CredentialRecord,
  type DependentImpact,
  type DriftEvent,
  type ElevationEnded,
  type NhiInventoryStatus,
  type OffboardPolicyEvidence,
  type StepReadback,
  type StopScenariosResult,
  type WatchCheckResult,
} from '../workflows/offboarding.contract';
import { currentWorkflowId, loadNhi, type NhiRecord } from './common';
import type { ActivityDeps } from './deps';

/** What the target reports for an identity that no longer exists: no access at all. */
const GONE: AccessState = { exists: false, canLogin: false, connectionLimit: 0, entitlements: [] };

const now = () => new Date().toISOString();
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Retryable: the workflow escalates after a few attempts and keeps retrying. */
function enforcementFailed(what: string, err?: unknown): ApplicationFailure {
  return ApplicationFailure.retryable(err === undefined ? what : `${what}: ${message(err)}`, ErrorType.EnforcementFailed);
}

const isGone = (err: unknown) => err instanceof PermanentConnectorError && err.code === ConnectorErrorCode.UnknownIdentity;

/**
 * Every target failure is retryable here, including the connector's "permanent" ones (a membership
 * it may not revoke, a missing privilege): removal is never abandoned, an operator fixes the cause
 * while the workflow escalates. An identity that no longer exists holds no access: that is `gone`.
 */
async function atTarget<T>(what: string, gone: T, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (isGone(err)) return gone;
    if (err instanceof ApplicationFailure) throw err;
    throw enforcementFailed(`${what} failed`, err);
  }
}

const sameSet = (a: readonly string[], b: readonly string[]) => [...a].sort().join('\n') === [...b].sort().join('\n');

const credentialRecords = (refs: SecretRef[]): CredentialRecord[] =>
  refs.map((r) => ({ ref: r.ref, version: r.version, status: r.status, fingerprint: r.fingerprint }));

/** The anomaly throttling workflow's type (workflows/anomalyThrottling.ts; no contract module yet). */

/** Visibility string literal (ids are slugs; this keeps the query safe regardless). */
const literal = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** Dependents are free-form on the inventory record: strings or {id, kind, owner, description}. */
export function dependentImpacts(nhi: Pick<NhiRecord, 'connector' | 'externalRef' | 'dependents'>, entitlements: readonly string[]): DependentImpact[] {
  const list = Array.isArray(nhi.dependents) ? nhi.dependents : [];
  const lost = entitlements.length ? `; loses ${entitlements.join(', ')}` : '';
  return list.map((d, i) => {
    const o: Record<string, unknown> = typeof d === 'string' ? { id: d } : d && typeof d === 'object' ? (d as Record<string, unknown>) : { id: String(d) };
    const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    return {
      id: str('id') ?? `dependent-${i + 1}`,
      kind: str('kind'),
      owner: str('owner'),
      description: str('description'),
      impact: `cannot connect to ${nhi.connector} as ${nhi.externalRef} any more (login refused; credentials deleted when the grace period ends)${lost}`,
    };
  });
}

export function createOffboardingActivities(deps: ActivityDeps) {
  async function target(nhiId: string): Promise<{ nhi: NhiRecord; connector: Connector; identity: string }> {
    const nhi = await loadNhi(deps.pool, nhiId);
    return { nhi, connector: deps.connectors.get(nhi.connector), identity: nhi.externalRef };
  }

  function audit(nhiId: string, e: Omit<AuditEventInput, 'workflowId' | 'scenario' | 'nhiId' | 'actor'> & { actor?: string }) {
    return appendAudit(deps.pool, { actor: 'system', ...e, workflowId: currentWorkflowId(), scenario: OFFBOARDING_SCENARIO, nhiId });
  }

  async function principalRoles(id: string): Promise<string[]> {
    const { rows } = await deps.pool.query<{ roles: string[] }>('SELECT roles FROM principals WHERE id = $1', [id]);
    return rows[0]?.roles ?? [];
  }

  /** The grants ledger must not claim holders for access offboarding removed. */
  async function releaseLedger(nhiId: string): Promise<{ entitlement: string; holder: string }[]> {
    return withTransaction(deps.pool, async (tx) => {
      const { rows: held } = await tx.query<{ entitlement: string }>(
        'SELECT DISTINCT entitlement FROM grants WHERE nhi_id = $1 AND released_at IS NULL ORDER BY entitlement',
        [nhiId],
      );
      // The same per-entitlement locks the JIT grant and release take (in a fixed order).
      for (const r of held) await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`grant:${nhiId}:${r.entitlement}`]);
      const { rows } = await tx.query<{ entitlement: string; holder: string }>(
        'UPDATE grants SET released_at = now() WHERE nhi_id = $1 AND released_at IS NULL RETURNING entitlement, holder',
        [nhiId],
      );
      return rows.sort((a, b) => (a.entitlement + a.holder < b.entitlement + b.holder ? -1 : 1));
    });
  }

  /** Revoke every membership; what the connector may not revoke is reported, never hidden. */
  async function revokeAll(connector: Connector, identity: string): Promise<{ held: string[]; revoked: string[]; blocked: string[]; remaining: string[] }> {
    const held = await atTarget(`listing the entitlements of ${identity}`, [] as string[], () => connector.listEntitlements(identity));
    const revoked: string[] = [];
    const blocked: string[] = [];
    for (const e of held) {
      try {
        if ((await connector.revoke(identity, e)).changed) revoked.push(e);
      } catch (err) {
        if (isGone(err)) break;
        if (err instanceof PermanentConnectorError && err.code === ConnectorErrorCode.UnknownEntitlement) continue; // the group is gone, and the membership with it
        blocked.push(`${e}: ${message(err)}`);
      }
    }
    const remaining = await atTarget(`reading back the entitlements of ${identity}`, [] as string[], () => connector.listEntitlements(identity));
    return { held, revoked, blocked, remaining };
  }

  /** End one running elevation through its own revoke Update (it verifies the revocation itself). */
  async function endElevation(client: Client, workflowId: string, by: string, reason: string): Promise<ElevationEnded> {
    const handle = client.workflow.getHandle(workflowId);
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat({ elevation: workflowId }), 5_000);
    try {
      // The orchestrator acts with admin rights here: offboarding was authorised by policy already.
      const s = await handle.executeUpdate(revokeUpdate, { args: [{ by, roles: ['admin'], reason }] });
      return { workflowId, outcome: 'revoked', state: s.state };
    } catch (err) {
      const cause = (err as { cause?: { type?: string } }).cause;
      if (err instanceof WorkflowUpdateFailedError && cause?.type === ErrorType.RequestClosed) {
        // Already ending on its own: wait until its revocation is verified.
        try {
          const r = (await handle.result()) as { state?: string };
          return { workflowId, outcome: 'already_ending', state: r?.state };
        } catch (e) {
          return { workflowId, outcome: 'already_ending', detail: message(e) };
        }
      }
      const d = await handle.describe().catch(() => undefined);
      if (!d || d.status.name !== 'RUNNING') return { workflowId, outcome: 'finished', detail: message(err) };
      throw err;
    } finally {
      clearInterval(beat);
    }
  }

  return {
    /** Cedar decides (Offboard), as the requester; recorded with its policies. No change anywhere. */
    async evaluateOffboard(a: { nhiId: string; run: string; requestedBy: string; reason: string; ticket?: string; graceDays?: number; watchDays?: number }) {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const d = decideOffboard(deps.policy, {
        principal: { id: a.requestedBy, roles: await principalRoles(a.requestedBy) },
        nhi: { id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status },
      });
      const evidence: OffboardPolicyEvidence = {
        allowed: d.allowed,
        reasons: d.reasons,
        determiningPolicies: d.determiningPolicies,
        policySetHash: d.policySetHash,
        defaultGraceDays: d.defaultGraceDays,
        defaultWatchDays: d.defaultWatchDays,
      };
      if (nhi.status !== 'active' && nhi.status !== 'throttled') {
        evidence.allowed = false;
        evidence.reasons = [`${nhi.id} is ${nhi.status} already`];
      }
      await audit(nhi.id, {
        stepId: `${a.run}:policy`,
        actor: a.requestedBy,
        action: 'policy.offboard',
        outcome: evidence.allowed ? 'allowed' : 'denied',
        decision: evidence,
        details: { reason: a.reason, ticket: a.ticket ?? null, graceDays: a.graceDays ?? null, watchDays: a.watchDays ?? null, inventoryStatus: nhi.status },
      });
      return { evidence, connector: nhi.connector, identity: nhi.externalRef, status: nhi.status as NhiInventoryStatus };
    },

    /** Inventory status `offboarding` (compare-and-set from active/throttled; a retry is a no-op). */
    async markOffboarding(a: { nhiId: string; run: string; actor: string }) {
      const updated = await updateStatus(deps.pool, a.nhiId, 'offboarding', { from: ['active', 'throttled'] });
      if (!updated) {
        const nhi = await loadNhi(deps.pool, a.nhiId);
        throw ApplicationFailure.nonRetryable(`${a.nhiId} is ${nhi.status}: it cannot be offboarded now`, ErrorType.NhiNotActive);
      }
      await audit(a.nhiId, { stepId: `${a.run}:inventory:offboarding`, actor: a.actor, action: 'inventory.status', outcome: 'offboarding', readback: { status: updated.status } });
      return { status: updated.status };
    },

    /** Undo of markOffboarding (abort, or a failure before anything at the target changed). */
    async restoreInventoryStatus(a: { nhiId: string; run: string; status: NhiInventoryStatus; actor: string }) {
      const updated = await updateStatus(deps.pool, a.nhiId, a.status, { from: ['offboarding'] });
      const status = updated?.status ?? (await loadNhi(deps.pool, a.nhiId)).status;
      await audit(a.nhiId, {
        stepId: `${a.run}:inventory:restore`,
        actor: a.actor,
        action: 'inventory.status',
        outcome: status === a.status ? a.status : 'left_unchanged',
        readback: { status },
        details: { wanted: a.status },
      });
      return { status };
    },

    /**
     * End the NHI's other running scenarios: JIT elevations through their revoke Update (answered once
     * each revocation is verified); anomaly throttling through the hook below.
     */
    async stopOtherScenarios(a: { nhiId: string; run: string; by: string; reason: string }): Promise<StopScenariosResult> {
      await loadNhi(deps.pool, a.nhiId);
      const throttles: StopScenariosResult['throttles'] = { supported: true, ended: [] };
      let result: StopScenariosResult;
      if (!deps.temporal) {
        result = {
          elevations: [],
          throttles,
          skipped: 'this worker has no Temporal client: running elevations were not reached (revoking every entitlement below removes their access anyway)',
        };
      } else {
        const { client } = deps.temporal;
        const query = `WorkflowType = ${literal(JIT_WORKFLOW_TYPE)} AND NhiId = ${literal(a.nhiId)} AND ExecutionStatus = "Running"`;
        const ids: string[] = [];
        for await (const wf of client.workflow.list({ query })) ids.push(wf.workflowId);
        const elevations: ElevationEnded[] = [];
        for (const id of ids) elevations.push(await endElevation(client, id, a.by, a.reason));
        // End each running throttle of this NHI *without* restoring its access: offboarding takes over.
        throttles.found = [];
        const throttleQuery = `WorkflowType = ${literal(ANOMALY_WORKFLOW_TYPE)} AND NhiId = ${literal(a.nhiId)} AND ExecutionStatus = "Running"`;
        for await (const wf of client.workflow.list({ query: throttleQuery })) {
          try {
            throttles.found.push(wf.workflowId);
            await client.workflow.getHandle(wf.workflowId).signal(supersedeSignal, { by: 'offboarding', reason: `offboarding ${currentWorkflowId()}` });
            throttles.ended.push(wf.workflowId);
          } catch {
            // It ended between the listing and the signal.
          }
        }
        result = { elevations, throttles };
      }
      await audit(a.nhiId, {
        stepId: `${a.run}:stop-scenarios`,
        action: 'scenarios.stop',
        outcome: result.skipped ? 'skipped' : 'stopped',
        readback: result.elevations,
        details: { throttles: result.throttles, skipped: result.skipped ?? null },
      });
      return result;
    },

    /** What an abort restores: memberships, login, connection limit; plus credential fingerprints. */
    async snapshotAccess(a: { nhiId: string; run: string }) {
      const { nhi, connector, identity } = await target(a.nhiId);
      const state = await atTarget(`reading ${identity}`, GONE, () => connector.readAccess(identity));
      const snapshot: AccessSnapshot = state.exists
        ? await atTarget(`snapshot of ${identity}`, { identity, ...GONE, takenAt: now() }, () => connector.snapshot(identity))
        : { identity, ...GONE, takenAt: now() };
      const liveSessions = snapshot.exists ? (await atTarget(`listing sessions of ${identity}`, [], () => connector.listSessions(identity))).length : 0;
      const credentials = credentialRecords(await deps.secrets.list(a.nhiId));
      await audit(nhi.id, {
        stepId: `${a.run}:snapshot`,
        action: 'access.snapshot',
        outcome: snapshot.exists ? 'taken' : 'identity_missing',
        target: { connector: nhi.connector, identity },
        readback: { snapshot, liveSessions, credentials },
      });
      return { snapshot, liveSessions, credentials };
    },

    async disableLogin(a: { nhiId: string; run: string; step: string }): Promise<StepReadback> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const { changed } = await atTarget(`disabling login of ${identity}`, { changed: false }, () => connector.setLogin(identity, false));
      const after = await atTarget(`reading back ${identity}`, GONE, () => connector.readAccess(identity));
      if (after.exists && after.canLogin) throw enforcementFailed(`${identity} can still log in after NOLOGIN`);
      const rb: StepReadback = { at: now(), changed, detail: { exists: after.exists, canLogin: after.canLogin } };
      await audit(nhi.id, { stepId: `${a.run}:${a.step}`, action: 'login.disable', outcome: 'disabled', target: { connector: nhi.connector, identity, changed }, readback: rb.detail });
      return rb;
    },

    /** Revoke every membership, then release the ledger's holders; retried until none is left. */
    async revokeEntitlements(a: { nhiId: string; run: string; step: string }): Promise<StepReadback> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const r = await revokeAll(connector, identity);
      if (r.remaining.length) {
        throw enforcementFailed(`${identity} still holds ${r.remaining.join(', ')}${r.blocked.length ? ` (${r.blocked.join('; ')})` : ''}`);
      }
      const releasedHolders = await releaseLedger(a.nhiId);
      const rb: StepReadback = { at: now(), changed: r.revoked.length > 0, detail: { held: r.held, revoked: r.revoked, entitlements: r.remaining, releasedHolders } };
      await audit(nhi.id, {
        stepId: `${a.run}:${a.step}`,
        action: 'entitlements.revoke',
        outcome: 'revoked',
        target: { connector: nhi.connector, identity, revoked: r.revoked },
        readback: { entitlements: r.remaining, releasedHolders },
      });
      return rb;
    },

    async endSessions(a: { nhiId: string; run: string; step: string }): Promise<StepReadback> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const { terminated } = await atTarget(`ending the sessions of ${identity}`, { terminated: 0 }, () => connector.invalidateSessions(identity));
      const left = await atTarget(`listing the sessions of ${identity}`, [], () => connector.listSessions(identity));
      if (left.length) throw enforcementFailed(`${identity} still has ${left.length} live session(s) (pids ${left.map((l) => l.pid).join(', ')})`);
      const rb: StepReadback = { at: now(), changed: terminated > 0, detail: { terminated, liveSessions: 0 } };
      await audit(nhi.id, { stepId: `${a.run}:${a.step}`, action: 'sessions.terminate', outcome: 'terminated', target: { connector: nhi.connector, identity, terminated }, readback: { liveSessions: 0 } });
      return rb;
    },

    /**
     * The "no standing access" proof, read from the target: no memberships, login refused (the role
     * says NOLOGIN, and logging in with every credential the store holds is refused), no sessions.
     * Read-only; the workflow records the attestation.
     */
    async proveNoAccess(a: { nhiId: string; snapshot?: AccessSnapshot }): Promise<Attestation> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const access = await atTarget(`reading ${identity}`, GONE, () => connector.readAccess(identity));
      const sessions = access.exists ? await atTarget(`listing sessions of ${identity}`, [], () => connector.listSessions(identity)) : [];
      const checks: AttestationCheck[] = [
        { check: 'no_entitlements', ok: access.entitlements.length === 0, evidence: { entitlements: access.entitlements, identityExists: access.exists } },
        { check: 'login_disabled', ok: !access.canLogin, evidence: { canLogin: access.canLogin, identityExists: access.exists } },
      ];
      for (const c of credentialRecords(await deps.secrets.list(a.nhiId))) {
        const check = `credential_refused:v${c.version}`;
        if (c.status === 'deleted' || c.status === 'discarded') {
          checks.push({ check, ok: true, evidence: { ...c, probed: false, why: 'the store holds no value for it' } });
          continue;
        }
        let value: string;
        try {
          value = await deps.secrets.reveal(c.ref);
        } catch (err) {
          checks.push({ check, ok: true, evidence: { ...c, probed: false, why: `unreadable with this store's key (${message(err)}); login_disabled covers it` } });
          continue;
        }
        if (!access.exists) {
          checks.push({ check, ok: true, evidence: { ...c, probed: false, why: 'the identity no longer exists' } });
          continue;
        }
        const p = await atTarget(`probing ${identity}`, { access: 'denied' as const, code: 'identity_gone' }, () => connector.probe(identity, value));
        // Refused either way: wrong credential (denied) or login refused for another reason (inconclusive).
        checks.push({ check, ok: p.access !== 'granted', evidence: { ...c, probed: true, access: p.access, code: p.code ?? null } });
      }
      checks.push({
        check: 'no_live_sessions',
        ok: sessions.length === 0,
        evidence: { sessions: sessions.map((x) => ({ pid: x.pid, backendStart: x.backendStart, state: x.state })) },
      });
      return {
        nhiId: nhi.id,
        connector: nhi.connector,
        identity,
        at: now(),
        outcome: checks.every((c) => c.ok) ? 'no_standing_access' : 'access_remains',
        checks,
        dependents: dependentImpacts(nhi, a.snapshot?.entitlements ?? []),
        snapshotTakenAt: a.snapshot?.takenAt,
      };
    },

    /** Put access back exactly as the snapshot says, and read it back; the active credential is probed as evidence. */
    async restoreAccess(a: { nhiId: string; run: string; snapshot: AccessSnapshot; actor: string; reason: string }) {
      const { nhi, connector, identity } = await target(a.nhiId);
      if (a.snapshot.exists) {
        try {
          await connector.restore(a.snapshot);
        } catch (err) {
          throw enforcementFailed(`restoring ${identity} to its snapshot of ${a.snapshot.takenAt}`, err);
        }
      }
      const after = await atTarget(`reading back ${identity}`, GONE, () => connector.readAccess(identity));
      const same =
        after.exists === a.snapshot.exists &&
        (!after.exists ||
          (after.canLogin === a.snapshot.canLogin && after.connectionLimit === a.snapshot.connectionLimit && sameSet(after.entitlements, a.snapshot.entitlements)));
      if (!same) throw enforcementFailed(`${identity} is not at its snapshot after restore (now ${JSON.stringify(after)})`);
      // Evidence only: the store may hold no credential, or one the target never had.
      let probe: Record<string, unknown> | null = null;
      const active = await deps.secrets.active(a.nhiId);
      if (active && after.exists && after.canLogin) {
        try {
          const p = await connector.probe(identity, await deps.secrets.reveal(active.ref));
          probe = { ref: active.ref, version: active.version, fingerprint: active.fingerprint, access: p.access, code: p.code ?? null };
        } catch (err) {
          probe = { ref: active.ref, version: active.version, fingerprint: active.fingerprint, access: 'unknown', detail: message(err) };
        }
      }
      await audit(nhi.id, {
        stepId: `${a.run}:restore`,
        actor: a.actor,
        action: 'access.restore',
        outcome: 'restored',
        target: { connector: nhi.connector, identity, snapshotTakenAt: a.snapshot.takenAt },
        readback: { after, probe },
        details: { reason: a.reason },
      });
      return { after, probe };
    },

    /**
     * Finalise: the role stays (objects it owns are not dropped) but refuses login; every stored
     * credential is erased (fingerprints stay for the record); inventory status `offboarded`.
     */
    async finaliseOffboarding(a: { nhiId: string; run: string; actor: string }) {
      const { nhi, connector, identity } = await target(a.nhiId);
      await atTarget(`disabling login of ${identity}`, { changed: false }, () => connector.setLogin(identity, false));
      const access = await atTarget(`reading back ${identity}`, GONE, () => connector.readAccess(identity));
      if (access.exists && access.canLogin) throw enforcementFailed(`${identity} can still log in`);
      const deletedNow = await deps.secrets.deleteAll(a.nhiId);
      const credentials = credentialRecords(await deps.secrets.list(a.nhiId));
      const kept = credentials.filter((c) => c.status !== 'deleted');
      if (kept.length) throw enforcementFailed(`the secret store still holds ${kept.map((c) => `v${c.version}`).join(', ')} for ${a.nhiId}`);
      // Unconditional: from here the orchestrator's offboarding is the authority on this record.
      const updated = await updateStatus(deps.pool, a.nhiId, 'offboarded');
      if (!updated) throw ApplicationFailure.nonRetryable(`NHI ${a.nhiId} is not in the inventory`, ErrorType.NhiNotFound);
      await audit(nhi.id, {
        stepId: `${a.run}:finalise`,
        actor: a.actor,
        action: 'offboarding.finalise',
        outcome: 'offboarded',
        target: { connector: nhi.connector, identity, roleKept: access.exists },
        readback: { canLogin: access.canLogin, identityExists: access.exists, credentials, inventoryStatus: updated.status },
        details: { deletedNow },
      });
      return { at: now(), deletedNow, credentials, canLogin: access.canLogin };
    },

    /**
     * A watch-period re-check: anything that reappeared outside the orchestrator (login re-enabled,
     * a membership re-granted, a live session) is removed again and reported as drift.
     */
    async recheckAccess(a: { nhiId: string; run: string; check: number | 'pre-finalise' }): Promise<WatchCheckResult> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const at = now();
      const before = await atTarget(`reading ${identity}`, GONE, () => connector.readAccess(identity));
      const drift: DriftEvent[] = [];
      const blocked: string[] = [];
      if (before.exists) {
        if (before.canLogin) {
          await atTarget(`disabling login of ${identity}`, { changed: false }, () => connector.setLogin(identity, false));
          drift.push({ at, check: a.check, kind: 'login_enabled', detail: `${identity} could log in again: set NOLOGIN` });
        }
        if (before.entitlements.length) {
          const r = await revokeAll(connector, identity);
          blocked.push(...r.blocked);
          for (const e of r.revoked) drift.push({ at, check: a.check, kind: 'entitlement', detail: `${identity} held ${e} again: revoked` });
        }
        const sessions = await atTarget(`listing sessions of ${identity}`, [], () => connector.listSessions(identity));
        if (sessions.length) {
          await atTarget(`ending sessions of ${identity}`, { terminated: 0 }, () => connector.invalidateSessions(identity));
          drift.push({ at, check: a.check, kind: 'sessions', detail: `${sessions.length} live session(s) of ${identity}: terminated` });
        }
      }
      const after = await atTarget(`reading back ${identity}`, GONE, () => connector.readAccess(identity));
      if (after.exists && (after.canLogin || after.entitlements.length)) {
        throw enforcementFailed(
          `${identity} still has access after the re-check (login ${after.canLogin ? 'enabled' : 'disabled'}, entitlements ${after.entitlements.join(', ') || 'none'})${blocked.length ? `: ${blocked.join('; ')}` : ''}`,
        );
      }
      if (drift.some((d) => d.kind === 'entitlement')) await releaseLedger(a.nhiId);
      await audit(nhi.id, {
        stepId: `${a.run}:watch:${a.check}`,
        action: 'watch.check',
        outcome: drift.length ? 'drift_reverted' : 'clean',
        target: { connector: nhi.connector, identity },
        readback: { before, after },
        details: { check: a.check, drift },
      });
      return { check: a.check, at, clean: drift.length === 0, drift, after };
    },
  };
}
