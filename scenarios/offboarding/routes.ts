// Offboarding API: start one (policy decides: an admin, or the owner of an integration), inspect it,
// read its "no standing access" attestation, and during the grace period abort (admin) or confirm.
import { randomBytes } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { Router } from 'express';
import { z } from 'zod';
import { getNhi, nhiIdSchema, text } from '../../lib/inventory';
import { decideOffboard, graceTooShort } from './policy';
import { getPrincipal } from '../../lib/principals';
import {
  abortUpdate,
  confirmUpdate,
  DEFAULT_OFFBOARDING_SETTINGS,
  MAX_GRACE_DAYS,
  MAX_WATCH_DAYS,
  OFFBOARDING_SCENARIO,
  OFFBOARDING_WORKFLOW_TYPE,
  offboardingSummary,
  offboardingWorkflowId,
  statusQuery,
  type OffboardingInput,
  type OffboardingSettings,
  type OffboardingStatus,
} from './contract';
import { NhiIdKey, NhiStateKey, RequestedByKey, ScenarioKey } from '../../workflows/search-attributes';
import { ApiError, errorResponseSchema } from '../../api/errors';
import { defineRoute } from '../../api/route';
import type { ScenarioDeps } from '../../api/scenarios';
import { mapUpdateError, requireRunning } from '../../api/workflow-errors';
import { signAuthority } from '../../lib/authority';

export const offboardingRequestSchema = z
  .strictObject({
    nhiId: nhiIdSchema,
    reason: z.string().trim().min(3).max(500),
    ticket: text(64).optional().meta({ example: 'TICKET-9' }),
    graceDays: z.number().int().min(0).max(MAX_GRACE_DAYS).optional().meta({ description: 'Days during which an admin can abort (the offboarding\'s intents are released: the NHI gets what the other intents and its baseline want); default from policy' }),
    watchDays: z.number().int().min(0).max(MAX_WATCH_DAYS).optional().meta({ description: 'Days of re-checks after finalisation; default from policy' }),
  })
  .meta({ id: 'OffboardingRequest', description: 'Offboard an NHI; the requester is the authenticated principal.' });

const offboardingStartedSchema = z
  .strictObject({
    id: z.string(),
    workflowId: z.string(),
    nhiId: z.string(),
    state: z.string(),
    graceDays: z.number().int().nullable(),
    watchDays: z.number().int().nullable(),
    determiningPolicies: z.array(z.string()),
  })
  .meta({ id: 'OffboardingStarted' });

const offboardingStatusSchema = z
  .record(z.string(), z.unknown())
  .meta({ id: 'OffboardingStatus', description: 'The workflow\'s status query: state, its intents, disable read-backs, attestation, grace, watch checks and drift, timeline.' });

const attestationSchema = z
  .strictObject({
    workflowId: z.string(),
    requestId: z.string().nullable(),
    nhiId: z.string().nullable(),
    state: z.string().nullable(),
    outcome: z.string(),
    at: z.string().nullable(),
    checks: z.array(z.strictObject({ check: z.string(), ok: z.boolean(), evidence: z.record(z.string(), z.unknown()) })),
    dependents: z.array(z.record(z.string(), z.unknown())),
    intents: z
      .strictObject({ owner: z.string(), restrictions: z.array(z.string()), committedAt: z.string(), releasedAt: z.string().optional() })
      .nullable()
      .meta({ description: 'The offboarding\'s own intents in the ledger at the time of the proof (an abort releases exactly these)' }),
    audit: z.strictObject({ seq: z.number().int(), id: z.string(), at: z.string(), hash: z.string(), prevHash: z.string() }),
  })
  .meta({ id: 'OffboardingAttestation', description: 'The "no standing access" proof: each check with its evidence, and the audit event that records it.' });

const idParams = z.strictObject({ id: z.string().regex(/^offboard-[a-z][a-z0-9_-]{1,62}$/, 'an offboarding id (offboard-<nhiId>)') });

const runningConflict = (workflowId: string, message: string) =>
  new ApiError(409, 'conflict', message, [{ path: 'body.nhiId', message: `offboarding ${workflowId} is running` }], { Location: `/v1/offboardings/${workflowId}` });

export function createOffboardingRouter(deps: ScenarioDeps): Router {
  const router = Router();
  const { client, taskQueue } = deps.temporal;
  const settings: OffboardingSettings = {
    ...DEFAULT_OFFBOARDING_SETTINGS,
    escalationAttempts: deps.config.REVOKE_ESCALATION_ATTEMPTS ?? DEFAULT_OFFBOARDING_SETTINGS.escalationAttempts,
    ...deps.offboardingSettings,
  };
  const updateWaitMs = deps.offboardingUpdateWaitMs ?? 20_000;
  const handle = (id: string): WorkflowHandle => client.workflow.getHandle(id);
  const statusOf = (id: string): Promise<OffboardingStatus> => handle(id).query(statusQuery);

  defineRoute(router, {
    method: 'post',
    path: '/v1/offboardings',
    summary: 'Offboard an NHI: disable, revoke, end sessions, prove, then grace and watch',
    description:
      'Policy decides who may (an admin, or the owner of an integration), the default grace and watch periods, and for high and critical NHIs a minimum grace period (a shorter graceDays is a 400) and a second person: finalisation waits for the confirmation of an admin other than the requester. One offboarding per NHI at a time: a second request answers 409 with the running one\'s id.',
    tags: ['offboarding'],
    body: offboardingRequestSchema,
    responses: {
      202: { description: 'Started', schema: offboardingStartedSchema },
      403: { description: 'Policy does not let this principal offboard this NHI', schema: errorResponseSchema },
      404: { description: 'Unknown NHI', schema: errorResponseSchema },
      409: { description: 'Already offboarded, or an offboarding is running (its id is in Location)', schema: errorResponseSchema },
    },
    handler: async ({ body, principal, res }) => {
      // Everything checkable before a workflow starts is checked here: bad input changes nothing.
      const nhi = await getNhi(deps.pool, body.nhiId);
      if (!nhi) throw ApiError.notFound(`NHI ${body.nhiId} not found`);
      const workflowId = offboardingWorkflowId(nhi.id);
      if (nhi.status === 'offboarded') throw ApiError.conflict(`${nhi.id} is already offboarded`);
      if (nhi.status === 'offboarding') throw runningConflict(workflowId, `${nhi.id} is being offboarded: ${workflowId}`);
      const me = (await getPrincipal(deps.pool, principal.id)) ?? principal;
      const d = decideOffboard(deps.policy, {
        principal: { id: me.id, roles: me.roles },
        nhi: { id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status },
      });
      if (!d.allowed) throw ApiError.forbidden(`${principal.id} may not offboard ${nhi.id}: ${d.reasons.join('; ') || 'no policy allows it'}`);
      const tooShort = graceTooShort(d, nhi.id, body.graceDays);
      if (tooShort) throw ApiError.validation([{ path: 'body.graceDays', message: tooShort }]);

      const input: OffboardingInput = {
        version: 1,
        nhiId: nhi.id,
        reason: body.reason,
        ticket: body.ticket,
        graceDays: body.graceDays ?? (d.defaultGraceDays === null ? undefined : Math.max(d.defaultGraceDays, d.minGraceDays)),
        watchDays: body.watchDays ?? d.defaultWatchDays ?? undefined,
        requestedBy: principal.id,
        authority: signAuthority(deps.authorityKey, { workflowId, message: 'start', principal: principal.id }),
        requestedAt: new Date().toISOString(),
        requestId: randomBytes(4).toString('hex'),
        settings,
      };
      try {
        await client.workflow.start(OFFBOARDING_WORKFLOW_TYPE, {
          taskQueue,
          workflowId,
          args: [input],
          // After an abort (or a denial) the NHI may be offboarded again under the same business key.
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          workflowIdConflictPolicy: 'FAIL',
          staticSummary: offboardingSummary(input),
          staticDetails: `Reason: ${input.reason}${input.ticket ? `\nTicket: ${input.ticket}` : ''}\nRequested by ${input.requestedBy}\nGrace ${input.graceDays ?? '(policy)'} day(s), watch ${input.watchDays ?? '(policy)'} day(s)`,
          typedSearchAttributes: [
            { key: NhiIdKey, value: input.nhiId },
            { key: ScenarioKey, value: OFFBOARDING_SCENARIO },
            { key: NhiStateKey, value: 'evaluating' },
            { key: RequestedByKey, value: input.requestedBy },
          ],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw runningConflict(workflowId, `an offboarding of ${nhi.id} is already running: ${workflowId}`);
        throw err;
      }
      // The policy step takes milliseconds: answer with the state after it when it is that quick.
      let state = 'evaluating';
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline) {
        try {
          state = (await statusOf(workflowId)).state;
          if (state !== 'evaluating') break;
        } catch {
          /* not yet queryable */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      res.location(`/v1/offboardings/${workflowId}`);
      return {
        id: workflowId,
        workflowId,
        nhiId: nhi.id,
        state,
        graceDays: input.graceDays ?? null,
        watchDays: input.watchDays ?? null,
        determiningPolicies: d.determiningPolicies,
      };
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/offboardings/:id',
    summary: 'An offboarding\'s status',
    tags: ['offboarding'],
    params: idParams,
    notFoundWhenParamsInvalid: 'offboarding',
    responses: { 200: { description: 'The status query', schema: offboardingStatusSchema } },
    handler: ({ params }) => statusOf(params.id),
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/offboardings/:id/attestation',
    summary: 'The "no standing access" attestation: each check with its evidence',
    description: 'Read from the audit trail (tamper-evident), for the current (or, once the workflow is gone, the latest) offboarding under this id.',
    tags: ['offboarding'],
    params: idParams,
    notFoundWhenParamsInvalid: 'offboarding',
    responses: { 200: { description: 'The attestation', schema: attestationSchema } },
    handler: async ({ params }) => {
      let status: OffboardingStatus | undefined;
      try {
        status = await statusOf(params.id);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError || (err as Error)?.name === 'WorkflowNotFoundError')) throw err;
      }
      const args: unknown[] = [params.id];
      const sameRun = status ? `AND step_id = $${args.push(`${status.requestId}:attestation`)}` : '';
      const { rows } = await deps.pool.query<{
        seq: string;
        id: string;
        at: Date;
        step_id: string;
        nhi_id: string | null;
        outcome: string;
        readback: unknown;
        details: Record<string, unknown>;
        hash: string;
        prev_hash: string;
      }>(
        `SELECT seq, id, at, step_id, nhi_id, outcome, readback, details, hash, prev_hash FROM audit_events
          WHERE workflow_id = $1 AND action = 'offboarding.attestation' ${sameRun} ORDER BY seq DESC LIMIT 1`,
        args,
      );
      const row = rows[0];
      if (!row) {
        throw ApiError.notFound(status ? `offboarding ${params.id} has no attestation yet (it is ${status.state})` : `offboarding ${params.id} not found`);
      }
      const details = row.details ?? {};
      return {
        workflowId: params.id,
        requestId: status?.requestId ?? row.step_id.split(':')[0] ?? null,
        nhiId: row.nhi_id,
        state: status?.state ?? null,
        outcome: row.outcome,
        at: typeof details.at === 'string' ? details.at : null,
        checks: Array.isArray(row.readback) ? row.readback : [],
        dependents: Array.isArray(details.dependents) ? details.dependents : [],
        intents: details.intents && typeof details.intents === 'object' ? (details.intents as { owner: string; restrictions: string[]; committedAt: string }) : null,
        audit: { seq: Number(row.seq), id: row.id, at: row.at.toISOString(), hash: row.hash, prevHash: row.prev_hash },
      };
    },
  });

  /** Updates answer once done; a slow target gets a 202 with the status so far instead of a hung request. */
  async function update(id: string, run: (h: WorkflowHandle) => Promise<{ result(): Promise<OffboardingStatus> }>, res: { status(n: number): unknown }) {
    const h = handle(id);
    await requireRunning(h, 'offboarding');
    try {
      const u = await run(h);
      const result = await Promise.race([u.result(), new Promise<null>((r) => setTimeout(() => r(null), updateWaitMs).unref())]);
      if (result) return result;
      res.status(202);
      return statusOf(id);
    } catch (err) {
      throw mapUpdateError(err);
    }
  }

  defineRoute(router, {
    method: 'post',
    path: '/v1/offboardings/:id/abort',
    summary: 'Abort during the grace period: release the offboarding\'s intents, reconcile and verify (admin)',
    tags: ['offboarding'],
    roles: ['admin'],
    params: idParams,
    notFoundWhenParamsInvalid: 'offboarding',
    body: z.strictObject({ reason: z.string().trim().min(3).max(500) }),
    responses: {
      200: { description: 'Released, reconciled and verified (state aborted)', schema: offboardingStatusSchema },
      202: { description: 'Restore under way', schema: offboardingStatusSchema },
      409: { description: 'Finalised (nothing left to restore), or finished', schema: errorResponseSchema },
    },
    handler: ({ params, body, principal, res }) =>
      // Only who is asking: the workflow looks the roles up itself.
      update(params.id, (h) => h.startUpdate(abortUpdate, { args: [{ by: principal.id, reason: body.reason, authority: signAuthority(deps.authorityKey, { workflowId: h.workflowId, message: 'abort', principal: principal.id }) }], waitForStage: 'ACCEPTED' }), res),
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/offboardings/:id/confirm',
    summary: 'Confirm: skip the rest of the grace period and finalise now (the requester or an admin)',
    tags: ['offboarding'],
    params: idParams,
    notFoundWhenParamsInvalid: 'offboarding',
    body: z.strictObject({ comment: text(500).optional() }),
    responses: {
      200: { description: 'Finalised (state watching or completed)', schema: offboardingStatusSchema },
      202: { description: 'Finalisation under way', schema: offboardingStatusSchema },
      409: { description: 'Already finalised, being aborted, or finished', schema: errorResponseSchema },
    },
    handler: ({ params, body, principal, res }) =>
      update(params.id, (h) => h.startUpdate(confirmUpdate, { args: [{ by: principal.id, comment: body.comment, authority: signAuthority(deps.authorityKey, { workflowId: h.workflowId, message: 'confirm', principal: principal.id }) }], waitForStage: 'ACCEPTED' }), res),
  });

  return router;
}
