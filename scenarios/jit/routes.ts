// JIT elevation API: request, inspect, approve/deny, extend, revoke, cancel; and the deployment
// tooling's one call that closes a change window by its change id.
import { createHash, randomBytes } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Router } from 'express';
import type { Pool } from 'pg';
import { z } from 'zod';
import { closeChangeWindow } from './change-windows';
import { getNhi, nhiIdSchema, text } from '../../lib/inventory';
import type { PolicyEngine } from '../../lib/policy-engine';
import { decideElevation } from './policy';
import { getPrincipal } from '../../lib/principals';
import {
  approveUpdate,
  denyUpdate,
  extendUpdate,
  JIT_SCENARIO,
  JIT_WORKFLOW_TYPE,
  jitSummary,
  jitWorkflowId,
  revokeUpdate,
  statusQuery,
  type JitElevationInput,
  type JitSettings,
  type JitState,
  type JitStatus,
} from './contract';
import { ChangeIdKey, NhiIdKey, NhiStateKey, RequestedByKey, ScenarioKey } from '../../workflows/search-attributes';
import { ApiError, errorResponseSchema } from '../../api/errors';
import { defineRoute } from '../../api/route';
import { limitParam } from '../../api/validation';
import { mapUpdateError, requireRunning } from '../../api/workflow-errors';
import { visibilityLiteral } from '../../lib/visibility';
import { signAuthority, type SignedMessage } from '../../lib/authority';

const MAX_START_AHEAD_MS = 7 * 24 * 60 * 60_000;
const MAX_DURATION_MINUTES = 7 * 24 * 60;
/** States in which the deciding approval's answer is not final yet: the grant and its read-back are running. */
const GRANT_PENDING: JitState[] = ['evaluating', 'awaiting_approval', 'granting'];
const CLOCK_SKEW_MS = 60_000;

const entitlementName = z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'an entitlement name: lowercase letters, digits and _');
const changeIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'a change id: letters, digits, . _ : - (at most 64)');

export const elevationRequestSchema = z
  .strictObject({
    nhiId: nhiIdSchema,
    entitlements: z
      .array(entitlementName)
      .min(1)
      .max(10)
      .refine((a) => new Set(a).size === a.length, 'entitlements must not repeat'),
    justification: z.string().trim().min(10).max(500),
    ticket: text(64).optional(),
    changeId: changeIdSchema.optional(),
    // The ceiling is checked after policy (the handler), so a caller learns the policy's own limit.
    durationMinutes: z.number().int('a whole number of minutes').positive(),
    startAt: z.iso
      .datetime({ offset: true })
      .refine((s) => Date.parse(s) >= Date.now() - CLOCK_SKEW_MS, 'startAt is in the past')
      .refine((s) => Date.parse(s) <= Date.now() + MAX_START_AHEAD_MS, 'startAt is more than 7 days ahead')
      .optional(),
    breakGlass: z.boolean().optional(),
  })
  .meta({ id: 'ElevationRequest', description: 'A JIT elevation request; the requester is the authenticated principal.' });

const elevationStartedSchema = z
  .strictObject({ id: z.string(), workflowId: z.string(), status: z.string(), idempotentReplay: z.boolean() })
  .meta({ id: 'ElevationStarted' });

const elevationStatusSchema = z.record(z.string(), z.unknown()).meta({ id: 'ElevationStatus', description: 'The workflow\'s status query: state, approvals, grant and expiry, entitlements with read-back, timeline.' });

const elevationSummarySchema = z
  .strictObject({
    id: z.string(),
    workflowId: z.string(),
    nhiId: z.string().nullable(),
    state: z.string().nullable(),
    changeId: z.string().nullable(),
    requestedBy: z.string().nullable(),
    executionStatus: z.string(),
    startTime: z.string(),
    closeTime: z.string().nullable(),
  })
  .meta({ id: 'ElevationSummary' });

const idParams = z.strictObject({ id: z.string().regex(/^jit-[a-z0-9_-]{2,63}-[a-f0-9]{8,32}$/, 'an elevation id (jit-<nhiId>-<shortid>)') });

/** 403 denied_by_policy: each reason of the forbids that decided, and the workflow that recorded it. */
function policyDenied(workflowId: string, decision: NonNullable<JitStatus['decision']>): ApiError {
  const reasons = decision.reasons.length ? decision.reasons : decision.determiningPolicies;
  return new ApiError(
    403,
    'denied_by_policy',
    `Denied by policy: ${reasons.join('; ') || 'no permit allows this request'} (recorded as ${workflowId})`,
    reasons.map((message) => ({ path: 'policy', message })),
    { Location: `/v1/elevations/${workflowId}` },
  );
}

export interface ElevationRouterDeps {
  pool: Pool;
  client: Client;
  taskQueue: string;
  policy: PolicyEngine;
  /** The entitlements the NHI's connector can grant (the API validates requests against it). */
  grantableEntitlements(connector: string): Promise<string[]>;
  settings: JitSettings;
  /** How long POST /revoke waits for the verified revocation before answering 202. */
  revokeWaitMs?: number;
  /** How long the deciding approval waits for the grant's read-back before answering 202 (default 20 s). */
  approveWaitMs?: number;
  /** Signs the authenticated principal into each message that widens access (lib/authority.ts). */
  authorityKey: Buffer;
}

export function createElevationRouter(deps: ElevationRouterDeps): Router {
  const router = Router();
  const handle = (id: string): WorkflowHandle => deps.client.workflow.getHandle(id);
  const sign = (h: WorkflowHandle, message: SignedMessage, principal: string) => signAuthority(deps.authorityKey, { workflowId: h.workflowId, message, principal });

  async function statusOf(id: string): Promise<JitStatus> {
    return handle(id).query(statusQuery);
  }

  /** The status once `done` holds, polled for at most `waitMs` (~2 s); undefined if it does not get there. */
  async function settled(id: string, done: (s: JitStatus) => boolean, waitMs = 2000): Promise<JitStatus | undefined> {
    const deadline = Date.now() + waitMs;
    let last: JitStatus | undefined;
    while (Date.now() < deadline) {
      try {
        last = await statusOf(id);
        if (done(last)) return last;
      } catch {
        // not yet queryable
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return undefined;
  }

  defineRoute(router, {
    method: 'post',
    path: '/v1/elevations',
    summary: 'Request a JIT elevation',
    description: 'Policy decides (deny, auto-approve, N approvers, break-glass). Send an Idempotency-Key header to make retries safe.',
    tags: ['jit'],
    roles: ['requester'],
    body: elevationRequestSchema,
    responses: {
      202: { description: 'Started (or, with the same Idempotency-Key, the one already started)', schema: elevationStartedSchema },
      403: { description: 'denied_by_policy: policy denied the request (the reasons are in the message and issues; Location names the workflow that recorded the decision); forbidden: the role is missing', schema: errorResponseSchema },
    },
    handler: async ({ body, principal, req, res }) => {
      // Everything checkable before a workflow starts is checked here: bad input never starts one.
      const nhi = await getNhi(deps.pool, body.nhiId);
      if (!nhi) throw ApiError.validation([{ path: 'body.nhiId', message: `unknown NHI ${body.nhiId}` }]);
      const grantable = new Set(await deps.grantableEntitlements(nhi.connector));
      const unknown = body.entitlements.filter((e) => !grantable.has(e));
      if (unknown.length) {
        throw ApiError.validation(unknown.map((e) => ({ path: `body.entitlements`, message: `unknown entitlement ${e} (grantable: ${[...grantable].sort().join(', ')})` })));
      }
      const requester = (await getPrincipal(deps.pool, principal.id)) ?? principal;
      const preview = decideElevation(deps.policy, {
        requester: { id: requester.id, roles: requester.roles },
        nhi: { id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status },
        entitlements: body.entitlements,
        durationMinutes: body.durationMinutes,
        ticket: body.ticket,
        breakGlass: body.breakGlass,
      });
      if (preview.maxDurationMinutes !== undefined && body.durationMinutes > preview.maxDurationMinutes) {
        throw ApiError.validation(
          [{ path: 'body.durationMinutes', message: `at most ${preview.maxDurationMinutes} minutes for this request (policy: ${preview.reasons.join('; ') || preview.determiningPolicies.join(', ')})` }],
          'durationMinutes exceeds the policy maximum',
        );
      }
      if (body.durationMinutes > MAX_DURATION_MINUTES) {
        throw ApiError.validation([{ path: 'body.durationMinutes', message: `at most ${MAX_DURATION_MINUTES} minutes (7 days)` }]);
      }

      const key = req.get('Idempotency-Key');
      if (key !== undefined && !/^[\x21-\x7e]{1,128}$/.test(key)) {
        throw ApiError.validation([{ path: 'headers.idempotency-key', message: '1-128 visible ASCII characters' }]);
      }
      const requestHash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
      const shortId = key
        ? createHash('sha256').update(`${principal.id}\n${key}`).digest('hex').slice(0, 12)
        : randomBytes(6).toString('hex');
      const workflowId = jitWorkflowId(body.nhiId, shortId);
      if (key) {
        const { rows } = await deps.pool.query<{ request_hash: string }>(
          `INSERT INTO idempotency_keys (principal_id, key, scope, request_hash, response) VALUES ($1, $2, 'elevation', $3, $4)
           ON CONFLICT (principal_id, scope, key) DO UPDATE SET key = EXCLUDED.key RETURNING request_hash`,
          [principal.id, key, requestHash, JSON.stringify({ workflowId })],
        );
        if (rows[0].request_hash !== requestHash) {
          throw new ApiError(422, 'idempotency_key_reused', 'This Idempotency-Key was used for a different request body');
        }
      }
      const input: JitElevationInput = {
        version: 1,
        nhiId: body.nhiId,
        entitlements: body.entitlements,
        justification: body.justification,
        ticket: body.ticket,
        changeId: body.changeId,
        durationMinutes: body.durationMinutes,
        startAt: body.startAt ? new Date(body.startAt).toISOString() : undefined,
        breakGlass: body.breakGlass,
        requestedBy: principal.id,
        requestedAt: new Date().toISOString(),
        settings: deps.settings,
        authority: signAuthority(deps.authorityKey, { workflowId, message: 'start', principal: principal.id }),
      };
      let replay = false;
      try {
        await deps.client.workflow.start(JIT_WORKFLOW_TYPE, {
          taskQueue: deps.taskQueue,
          workflowId,
          args: [input],
          // An id, once used, stays that request's: a retried key finds it even after it ended.
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          staticSummary: jitSummary(input),
          staticDetails: `Justification: ${input.justification}${input.ticket ? `\nTicket: ${input.ticket}` : ''}\nRequested by ${input.requestedBy}`,
          typedSearchAttributes: [
            { key: NhiIdKey, value: input.nhiId },
            { key: ScenarioKey, value: JIT_SCENARIO },
            { key: NhiStateKey, value: 'evaluating' },
            { key: RequestedByKey, value: input.requestedBy },
            ...(input.changeId ? [{ key: ChangeIdKey, value: input.changeId }] : []),
          ],
        });
      } catch (err) {
        if (!(key && err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        replay = true;
      }
      // The policy step takes milliseconds: answer with the state after it when it is that quick.
      const after = await settled(workflowId, (s) => s.state !== 'evaluating');
      const status = after?.state ?? 'evaluating';
      res.location(`/v1/elevations/${workflowId}`);
      // The workflow recorded the decision (audit); the caller gets the policy's reasons with a 403.
      if (status === 'denied' && after?.decision?.outcome === 'deny') throw policyDenied(workflowId, after.decision);
      return { id: workflowId, workflowId, status, idempotentReplay: replay };
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/elevations',
    summary: 'List elevations (through Temporal visibility)',
    tags: ['jit'],
    query: z.strictObject({
      nhiId: nhiIdSchema.optional(),
      state: z.string().regex(/^[a-z_]{1,32}$/).optional(),
      changeId: changeIdSchema.optional(),
      limit: limitParam(50, 500),
    }),
    responses: { 200: { description: 'Newest first', schema: z.strictObject({ items: z.array(elevationSummarySchema) }) } },
    handler: async ({ query }) => {
      const clauses = [`WorkflowType = ${visibilityLiteral(JIT_WORKFLOW_TYPE)}`];
      if (query.nhiId) clauses.push(`NhiId = ${visibilityLiteral(query.nhiId)}`);
      if (query.state) clauses.push(`NhiState = ${visibilityLiteral(query.state)}`);
      if (query.changeId) clauses.push(`ChangeId = ${visibilityLiteral(query.changeId)}`);
      const items = [];
      for await (const wf of deps.client.workflow.list({ query: clauses.join(' AND '), pageSize: Math.min(query.limit, 100) })) {
        items.push({
          id: wf.workflowId,
          workflowId: wf.workflowId,
          nhiId: wf.typedSearchAttributes.get(NhiIdKey) ?? null,
          state: wf.typedSearchAttributes.get(NhiStateKey) ?? null,
          changeId: wf.typedSearchAttributes.get(ChangeIdKey) ?? null,
          requestedBy: wf.typedSearchAttributes.get(RequestedByKey) ?? null,
          executionStatus: wf.status.name,
          startTime: wf.startTime.toISOString(),
          closeTime: wf.closeTime?.toISOString() ?? null,
        });
        if (items.length >= query.limit) break;
      }
      return { items };
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/elevations/:id',
    summary: 'An elevation\'s status',
    tags: ['jit'],
    params: idParams,
    notFoundWhenParamsInvalid: 'elevation',
    responses: { 200: { description: 'The status query', schema: elevationStatusSchema } },
    handler: ({ params }) => statusOf(params.id),
  });

  const decision = (path: string, summary: string, roles: ('approver' | 'requester')[], body: z.ZodType<Record<string, unknown>>, send: (h: WorkflowHandle, b: any, principal: { id: string; roles: string[] }) => Promise<JitStatus>) =>
    defineRoute(router, {
      method: 'post',
      path: `/v1/elevations/:id/${path}`,
      summary,
      tags: ['jit'],
      roles,
      params: idParams,
      notFoundWhenParamsInvalid: 'elevation',
      body,
      responses: { 200: { description: 'The status after the update', schema: elevationStatusSchema }, 409: { description: 'The request is closed or finished' } },
      handler: async ({ params, body: b, principal }) => {
        const h = handle(params.id);
        await requireRunning(h, 'elevation');
        try {
          return await send(h, b, principal);
        } catch (err) {
          throw mapUpdateError(err);
        }
      },
    });

  defineRoute(router, {
    method: 'post',
    path: '/v1/elevations/:id/approve',
    summary: 'Approve (never your own request; one principal counts once)',
    description:
      'The deciding approval answers once the grant has been read back from the target (`active`, `scheduled`, `rolled_back`); ' +
      'if that takes longer than the wait, it answers 202 with the status so far and a Location to poll (GET /v1/elevations/:id).',
    tags: ['jit'],
    roles: ['approver'],
    params: idParams,
    notFoundWhenParamsInvalid: 'elevation',
    body: z.strictObject({ comment: text(500).optional() }),
    responses: {
      200: { description: 'The status after the approval (still awaiting more approvals, or granted and read back)', schema: elevationStatusSchema },
      202: { description: 'Approved; the grant is still being applied and verified: poll the Location', schema: elevationStatusSchema },
      409: { description: 'The request is closed or finished' },
    },
    handler: async ({ params, body: b, principal, res }) => {
      const h = handle(params.id);
      await requireRunning(h, 'elevation');
      let after: JitStatus;
      try {
        after = await h.executeUpdate(approveUpdate, { args: [{ approver: principal.id, comment: b.comment, authority: sign(h, 'approve', principal.id) }] });
      } catch (err) {
        throw mapUpdateError(err);
      }
      if (after.approvals.length < after.requiredApprovals) return after;
      const done = await settled(h.workflowId, (s) => !GRANT_PENDING.includes(s.state), deps.approveWaitMs ?? 20_000);
      if (done) return done;
      res.status(202).location(`/v1/elevations/${params.id}`);
      return (await settled(h.workflowId, () => true)) ?? after;
    },
  });
  decision('deny', 'Deny a pending request', ['approver'], z.strictObject({ reason: z.string().trim().min(3).max(500) }), (h, b, p) =>
    h.executeUpdate(denyUpdate, { args: [{ approver: p.id, reason: b.reason, authority: sign(h, 'deny', p.id) }] }),
  );
  decision(
    'extend',
    'Extend an active elevation (the requester; policy re-checks the total)',
    ['requester'],
    z.strictObject({ minutes: z.number().int('a whole number of minutes').positive().max(24 * 60, 'at most 1440 minutes in one extension (policy re-checks the whole window)'), reason: text(500).optional() }),
    (h, b, p) => h.executeUpdate(extendUpdate, { args: [{ by: p.id, minutes: b.minutes, reason: b.reason, authority: sign(h, 'extend', p.id) }] }),
  );

  defineRoute(router, {
    method: 'post',
    path: '/v1/elevations/:id/revoke',
    summary: '"I\'m done": end the elevation now (requester, approver or admin); answers once revocation is verified',
    tags: ['jit'],
    roles: ['requester', 'approver'],
    params: idParams,
    notFoundWhenParamsInvalid: 'elevation',
    body: z.strictObject({ reason: text(500).optional() }),
    responses: {
      200: { description: 'Revoked and verified', schema: elevationStatusSchema },
      202: { description: 'Revocation under way (still verifying)', schema: elevationStatusSchema },
    },
    handler: async ({ params, body, principal, res }) => {
      const h = handle(params.id);
      await requireRunning(h, 'elevation');
      try {
        const update = await h.startUpdate(revokeUpdate, { args: [{ by: principal.id, reason: body.reason, authority: sign(h, 'revoke', principal.id) }], waitForStage: 'ACCEPTED' });
        const result = await Promise.race([update.result(), new Promise<null>((r) => setTimeout(() => r(null), deps.revokeWaitMs ?? 20_000).unref())]);
        if (result) return result;
        res.status(202);
        return statusOf(params.id);
      } catch (err) {
        throw mapUpdateError(err);
      }
    },
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/elevations/:id/cancel',
    summary: 'Cancel (Temporal cancellation): anything granted is revoked and verified',
    tags: ['jit'],
    roles: ['requester', 'approver'],
    params: idParams,
    notFoundWhenParamsInvalid: 'elevation',
    responses: { 202: { description: 'Cancellation requested', schema: z.strictObject({ id: z.string(), cancelRequested: z.literal(true) }) } },
    handler: async ({ params, principal }) => {
      const h = handle(params.id);
      await requireRunning(h, 'elevation');
      const s = await statusOf(params.id);
      const privileged = principal.roles.includes('approver') || principal.roles.includes('admin');
      if (s.requestedBy !== principal.id && !privileged) throw ApiError.forbidden('only the requester, an approver or an admin can cancel an elevation');
      await h.cancel();
      return { id: params.id, cancelRequested: true as const };
    },
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/change-windows/:changeId/close',
    summary: 'Close a change window: signal closeWindow to every running elevation with this ChangeId',
    tags: ['jit', 'deployment'],
    roles: ['deployer'],
    params: z.strictObject({ changeId: changeIdSchema }),
    body: z.strictObject({ reason: text(500).optional() }),
    responses: {
      200: { description: 'How many running elevations were reached', schema: z.strictObject({ changeId: z.string(), reached: z.number().int(), workflowIds: z.array(z.string()) }) },
    },
    handler: async ({ params, body, principal }) => {
      const workflowIds = await closeChangeWindow(deps.client, params.changeId, { reason: body.reason, by: principal.id });
      return { changeId: params.changeId, reached: workflowIds.length, workflowIds };
    },
  });

  return router;
}
