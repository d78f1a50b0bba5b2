// Offboarding activities: policy, inventory status, disable, abort, finalisation and watch
// re-checks; ending the NHI's other scenarios is in stop-scenarios.ts, the proof in proof.ts.
// Access changes only through intents and the reconciler (enforcement/): commit or release this
// workflow's intent → reconcile → verify from the read-back. Ending sessions and probing credentials
// are actions, through the connector. Each step is idempotent and audited. Secret values are
// revealed only inside the probes and never leave them.
import { ApplicationFailure } from '@temporalio/common';
import type { Pool, PoolClient } from 'pg';
import type { Baseline } from '../../enforcement/desired';
import { activeIntents, commitIntent, intentsOf, releaseIntents, setBaseline } from '../../enforcement/intents';
import { enforcementFailed } from '../../enforcement/target-failures';
import { updateStatus } from '../../lib/inventory';
import { decideOffboard, graceTooShort } from './policy';
import { ErrorType } from '../../workflows/errors';
import { type DriftEvent, type NhiInventoryStatus, type OffboardPolicyEvidence, type StepReadback, type WatchCheckResult } from './contract';
import { currentWorkflowId, loadNhi, principalRoles, signedPrincipal } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';
import { atTarget, credentialRecords, message, now, offboardingSupport } from './activity-support';
import { createProofActivities } from './proof';
import { createStopScenariosActivities } from './stop-scenarios';
import type { Authority } from '../../lib/authority';

export { dependentImpacts } from './proof';

/** The baseline the current one replaced (for the audit row of a retried finalisation). */
async function replacedBaseline(q: Pool | PoolClient, nhiId: string): Promise<Baseline | undefined> {
  const { rows } = await q.query<{ params: Baseline }>(
    `SELECT params FROM intents WHERE nhi_id = $1 AND kind = 'baseline' AND released_at IS NOT NULL ORDER BY id DESC LIMIT 1`,
    [nhiId],
  );
  return rows[0]?.params;
}

export function createOffboardingActivities(deps: ActivityDeps) {
  const { target, audit, reconcileStep } = offboardingSupport(deps);

  /**
   * Policy as of now: does finalising this NHI need a second person? Asked as an admin, so a requester
   * who lost a role since the start cannot turn the safeguard off by it.
   */
  async function secondPersonRequired(nhiId: string, requestedBy: string): Promise<boolean> {
    const nhi = await loadNhi(deps.pool, nhiId);
    const d = decideOffboard(deps.policy, {
      principal: { id: requestedBy, roles: ['admin'] },
      nhi: { id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags },
    });
    return d.secondPersonRequired;
  }

  return {
    /** Cedar decides (Offboard), as the requester; recorded with its policies. No change anywhere. */
    async evaluateOffboard(a: { nhiId: string; run: string; requestedBy: string; reason: string; ticket?: string; graceDays?: number; watchDays?: number; authority?: Authority }) {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      // requestedBy must be the principal the API signed for this start (not a name typed in the Temporal UI).
      const signed = await signedPrincipal(deps, a.authority, 'start', a.requestedBy);
      const d = decideOffboard(deps.policy, {
        principal: { id: a.requestedBy, roles: await principalRoles(deps.pool, a.requestedBy) },
        nhi: { id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status },
      });
      const evidence: OffboardPolicyEvidence = {
        allowed: d.allowed,
        reasons: d.reasons,
        determiningPolicies: d.determiningPolicies,
        policySetHash: d.policySetHash,
        defaultGraceDays: d.defaultGraceDays,
        defaultWatchDays: d.defaultWatchDays,
        minGraceDays: d.minGraceDays,
        secondPersonRequired: d.secondPersonRequired,
      };
      const tooShort = graceTooShort(d, nhi.id, a.graceDays);
      if (!signed.ok) {
        evidence.allowed = false;
        evidence.reasons = [`start refused: ${signed.reason}`];
      } else if (nhi.status !== 'active' && nhi.status !== 'throttled') {
        evidence.allowed = false;
        evidence.reasons = [`${nhi.id} is ${nhi.status} already`];
      } else if (d.allowed && tooShort) {
        // Also for a workflow started directly (Temporal UI, CLI): the API refuses it before starting.
        evidence.allowed = false;
        evidence.reasons = [tooShort];
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
      // The credentials the store holds now (fingerprints): the proof probes each of them.
      const credentials = credentialRecords(await deps.secrets.list(a.nhiId));
      await audit(a.nhiId, { stepId: `${a.run}:inventory:offboarding`, actor: a.actor, action: 'inventory.status', outcome: 'offboarding', readback: { status: updated.status, credentials } });
      return { status: updated.status, credentials };
    },

    /**
     * Undo of markOffboarding (abort, or a failure before anything at the target changed). `throttled`
     * comes back only while a throttle intent is still owned in the ledger: an abort never brings
     * back a status that nothing owns (and a throttle still owned keeps its status).
     */
    async restoreInventoryStatus(a: { nhiId: string; run: string; status: NhiInventoryStatus; actor: string }) {
      const { restrictions } = await activeIntents(deps.pool, a.nhiId);
      const throttledBy = [...new Set(restrictions.filter((r) => r.restriction === 'throttle').map((r) => r.owner))];
      const wanted: NhiInventoryStatus = a.status === 'active' || a.status === 'throttled' ? (throttledBy.length ? 'throttled' : 'active') : a.status;
      const updated = await updateStatus(deps.pool, a.nhiId, wanted, { from: ['offboarding'] });
      const status = updated?.status ?? (await loadNhi(deps.pool, a.nhiId)).status;
      await audit(a.nhiId, {
        stepId: `${a.run}:inventory:restore`,
        actor: a.actor,
        action: 'inventory.status',
        outcome: status === wanted ? wanted : 'left_unchanged',
        readback: { status },
        details: { before: a.status, wanted, throttledBy },
      });
      return { status };
    },

    /**
     * Who may abort (an admin) or confirm (the requester or an admin) an offboarding: the roles come
     * from the principals table, never from the message. A refusal is audited (claimed roles included).
     */
    async checkOffboardingActor(a: { nhiId: string; run: string; step: string; principal: string; action: 'abort' | 'confirm'; requestedBy: string; claimedRoles?: unknown; authority?: Authority }) {
      // Abort gives access back, confirm erases the credential: both need the API's signature.
      const signed = await signedPrincipal(deps, a.authority, a.action, a.principal);
      const roles = signed.ok ? await principalRoles(deps.pool, a.principal) : [];
      let allowed = signed.ok && (roles.includes('admin') || (a.action === 'confirm' && a.principal === a.requestedBy));
      let reasons = allowed ? [] : !signed.ok ? [signed.reason] : [a.action === 'abort' ? 'only an admin can abort an offboarding' : 'only the requester or an admin can confirm an offboarding'];
      if (allowed && a.action === 'confirm' && a.principal === a.requestedBy && (await secondPersonRequired(a.nhiId, a.requestedBy))) {
        allowed = false;
        reasons = [`policy requires a second person: an admin other than ${a.requestedBy} must confirm`];
      }
      if (!allowed) {
        await audit(a.nhiId, {
          stepId: `${a.run}:${a.step}`,
          // Unsigned, the name is only a claim: the actor is the Temporal UI/CLI, the claim a detail.
          actor: signed.ok ? a.principal : 'temporal-ui',
          action: `offboarding.${a.action}`,
          outcome: 'refused',
          decision: { allowed, reasons, roles },
          details: { claimedBy: a.principal, claimedRoles: Array.isArray(a.claimedRoles) ? a.claimedRoles.filter((r) => typeof r === 'string').slice(0, 10) : null },
        });
      }
      return { allowed, roles, reasons };
    },

    ...createStopScenariosActivities(deps),

    /**
     * Disable step 1: the restrict intent `login_disabled` (owner: this workflow) → reconcile →
     * verified from the read-back. Login goes first and alone, so a membership the connector may not
     * revoke (step 2 escalates) never keeps the NHI able to log in.
     */
    async disableLogin(a: { nhiId: string; run: string; step: string }): Promise<StepReadback> {
      const owner = currentWorkflowId();
      const v = await reconcileStep(a.nhiId, { stepId: `${a.run}:${a.step}`, actor: 'system', reason: 'offboarding: login disabled' }, (c) =>
        commitIntent(c, a.nhiId, owner, { kind: 'restrict', restriction: 'login_disabled' }),
      );
      if (v.desired.canLogin) throw enforcementFailed(`the desired access of ${a.nhiId} still allows login (restricted by ${v.desired.restrictedBy.join(', ') || 'nothing'})`);
      if (v.observed.exists && v.observed.canLogin) throw enforcementFailed(`${v.identity} can still log in after reconcile`);
      return { at: v.checkedAt, changed: v.changes.login !== undefined, detail: { exists: v.observed.exists, canLogin: v.observed.canLogin, baselineCapturedNow: v.baselineCapturedNow } };
    },

    /**
     * Disable step 2: the restrict intent `offboarded` (owner: this workflow) → reconcile → verified:
     * the desired access has no entitlements and no login, and the read-back says so. Other
     * scenarios' intents stay in the ledger (withheld, not removed), so an abort can give them back.
     */
    async revokeEntitlements(a: { nhiId: string; run: string; step: string }): Promise<StepReadback> {
      const owner = currentWorkflowId();
      const v = await reconcileStep(a.nhiId, { stepId: `${a.run}:${a.step}`, actor: 'system', reason: 'offboarding: offboarded' }, (c) =>
        commitIntent(c, a.nhiId, owner, { kind: 'restrict', restriction: 'offboarded' }),
      );
      if (v.desired.entitlements.length || v.desired.canLogin) {
        throw enforcementFailed(`the desired access of ${a.nhiId} is not offboarded: ${JSON.stringify({ entitlements: v.desired.entitlements, canLogin: v.desired.canLogin })}`);
      }
      if (v.observed.exists && (v.observed.entitlements.length || v.observed.canLogin)) {
        throw enforcementFailed(`${v.identity} still holds ${v.observed.entitlements.join(', ') || 'login'} after reconcile`);
      }
      const held = [...new Set([...v.observed.entitlements.filter((e) => !v.changes.granted.includes(e)), ...v.changes.revoked])].sort();
      return {
        at: v.checkedAt,
        changed: v.changes.revoked.length > 0 || v.changes.login !== undefined,
        detail: { held, revoked: v.changes.revoked, entitlements: v.observed.entitlements, withheld: v.desired.withheld },
      };
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

    ...createProofActivities(deps),

    /**
     * Abort (or cancel) during grace: release this offboarding's intents → reconcile → verified. The
     * NHI then has exactly what the other active intents and the baseline want (an exact restore
     * without a snapshot): a throttle whose owner still holds it stays, one released is gone, a live
     * elevation's grant comes back. The active credential is probed as evidence.
     */
    async releaseOffboarding(a: { nhiId: string; run: string; actor: string; reason: string }) {
      const owner = currentWorkflowId();
      let released = 0;
      const v = await reconcileStep(a.nhiId, { stepId: `${a.run}:restore`, actor: a.actor, reason: `offboarding aborted: ${a.reason}` }, async (c) => {
        released = await releaseIntents(c, a.nhiId, owner);
      });
      const left = (await intentsOf(deps.pool, owner)).filter((i) => i.nhiId === a.nhiId);
      if (left.length) throw enforcementFailed(`${a.nhiId} still has intents of ${owner}: ${left.map((i) => `${i.kind} ${i.subject}`).join(', ')}`);
      if (v.desired.restrictedBy.includes(owner)) throw enforcementFailed(`${a.nhiId} is still restricted by ${owner}`);
      const { connector, identity, nhi } = await target(a.nhiId);
      // Evidence only: the store may hold no credential, or one the target never had.
      let probe: Record<string, unknown> | null = null;
      const active = await deps.secrets.active(a.nhiId);
      if (active && v.observed.exists && v.observed.canLogin) {
        try {
          const p = await connector.probe(identity, await deps.secrets.reveal(active.ref));
          probe = { ref: active.ref, version: active.version, fingerprint: active.fingerprint, access: p.access, code: p.code ?? null };
        } catch (err) {
          probe = { ref: active.ref, version: active.version, fingerprint: active.fingerprint, access: 'unknown', detail: message(err) };
        }
      }
      const desired = { entitlements: v.desired.entitlements, canLogin: v.desired.canLogin, connectionLimit: v.desired.connectionLimit, restrictedBy: v.desired.restrictedBy };
      await audit(nhi.id, {
        stepId: `${a.run}:restore`,
        actor: a.actor,
        action: 'offboarding.release',
        outcome: 'restored',
        target: { connector: nhi.connector, identity, releasedIntents: released },
        readback: { after: v.observed, probe },
        decision: { desired },
        details: { reason: a.reason },
      });
      return { after: v.observed, desired, released, probe };
    },

    /**
     * Finalise, an explicit and audited change of the baseline: the NHI's standing access becomes
     * empty (no entitlements, login off) and its `offboarded` intent stays active, so the NHI stays
     * offboarded after this workflow ends. The role stays (objects it owns are not dropped); every
     * stored credential is erased (fingerprints stay for the record); inventory status `offboarded`.
     */
    async finaliseOffboarding(a: { nhiId: string; run: string; actor: string }) {
      const owner = currentWorkflowId();
      let previous: Baseline | undefined;
      let next: Baseline | undefined;
      const v = await reconcileStep(a.nhiId, { stepId: `${a.run}:finalise`, actor: a.actor, reason: 'offboarding finalised: baseline emptied' }, async (c) => {
        const current = (await activeIntents(c, a.nhiId)).baseline;
        const done = current !== undefined && !current.entitlements.length && !current.canLogin;
        const empty: Baseline = { entitlements: [], canLogin: false, connectionLimit: current?.connectionLimit ?? -1 };
        await c.query('BEGIN');
        try {
          await commitIntent(c, a.nhiId, owner, { kind: 'restrict', restriction: 'offboarded' });
          await releaseIntents(c, a.nhiId, owner, { kind: 'restrict', subject: 'login_disabled' });
          if (!done) await setBaseline(c, a.nhiId, empty);
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        // A retry finds it done already: the baseline it replaced is the latest released one.
        previous = done ? await replacedBaseline(c, a.nhiId) : current;
        next = done ? current : empty;
      });
      if (v.desired.entitlements.length || v.desired.canLogin) throw enforcementFailed(`the desired access of ${a.nhiId} is not empty after finalisation`);
      if (v.observed.exists && (v.observed.canLogin || v.observed.entitlements.length)) throw enforcementFailed(`${v.identity} still has access after finalisation`);
      const { nhi, identity, connector } = await target(a.nhiId);
      // A target that issues credentials holds them itself (AWS access keys, a console password):
      // they are deleted there, every one, before the store forgets its copies.
      const removedAtTarget =
        connector.capabilities.credentials === 'issued' && connector.retireAllCredentials
          ? (await atTarget(`deleting the credentials of ${identity}`, { removed: [] as string[] }, () => connector.retireAllCredentials!(identity))).removed
          : undefined;
      await audit(nhi.id, {
        stepId: `${a.run}:baseline`,
        actor: a.actor,
        action: 'baseline.set',
        outcome: 'emptied',
        target: { connector: nhi.connector, identity },
        decision: { previous: previous ?? null, baseline: next ?? null },
        readback: { observed: v.observed },
        details: { reason: 'offboarding finalised', keeps: { owner, restriction: 'offboarded' } },
      });
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
        target: { connector: nhi.connector, identity, roleKept: v.observed.exists },
        readback: { canLogin: v.observed.canLogin, identityExists: v.observed.exists, credentials, inventoryStatus: updated.status },
        details: { deletedNow, ...(removedAtTarget ? { credentialsDeletedAtTarget: removedAtTarget } : {}) },
      });
      return { at: now(), deletedNow, credentials, canLogin: v.observed.canLogin };
    },

    /**
     * A watch-period re-check is a reconcile (the `offboarded` intent committed again, idempotently):
     * anything that reappeared outside the orchestrator (login re-enabled, a membership re-granted,
     * a connection limit changed) is reverted and recorded as drift; live sessions are ended.
     */
    async recheckAccess(a: { nhiId: string; run: string; check: number | 'pre-finalise' }): Promise<WatchCheckResult> {
      const owner = currentWorkflowId();
      const at = now();
      const v = await reconcileStep(a.nhiId, { stepId: `${a.run}:watch:${a.check}`, actor: 'system', reason: 'offboarding watch: drift correction' }, (c) =>
        commitIntent(c, a.nhiId, owner, { kind: 'restrict', restriction: 'offboarded' }),
      );
      const { nhi, connector, identity } = await target(a.nhiId);
      const drift: DriftEvent[] = [];
      if (v.changes.login?.[0]) drift.push({ at, check: a.check, kind: 'login_enabled', detail: `${identity} could log in again: login disabled` });
      for (const e of v.changes.revoked) drift.push({ at, check: a.check, kind: 'entitlement', detail: `${identity} held ${e} again: revoked` });
      if (v.changes.connectionLimit) {
        const [was, is] = v.changes.connectionLimit;
        drift.push({ at, check: a.check, kind: 'connection_limit', detail: `${identity} had connection limit ${was}: set back to ${is}` });
      }
      if (v.observed.exists) {
        const sessions = await atTarget(`listing sessions of ${identity}`, [], () => connector.listSessions(identity));
        if (sessions.length) {
          await atTarget(`ending sessions of ${identity}`, { terminated: 0 }, () => connector.invalidateSessions(identity));
          drift.push({ at, check: a.check, kind: 'sessions', detail: `${sessions.length} live session(s) of ${identity}: terminated` });
        }
      }
      if (v.desired.canLogin || v.desired.entitlements.length) throw enforcementFailed(`the desired access of ${a.nhiId} is not offboarded`);
      if (v.observed.exists && (v.observed.canLogin || v.observed.entitlements.length)) {
        throw enforcementFailed(`${identity} still has access after the re-check (login ${v.observed.canLogin ? 'enabled' : 'disabled'}, entitlements ${v.observed.entitlements.join(', ') || 'none'})`);
      }
      await audit(nhi.id, {
        stepId: `${a.run}:watch:${a.check}`,
        action: 'watch.check',
        outcome: drift.length ? 'drift_reverted' : 'clean',
        target: { connector: nhi.connector, identity },
        readback: { observed: v.observed, changes: v.changes },
        details: { check: a.check, drift },
      });
      return { check: a.check, at, clean: drift.length === 0, drift, after: v.observed };
    },
  };
}
