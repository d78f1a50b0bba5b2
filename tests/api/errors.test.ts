// The error mapper on Temporal's own error objects: a business failure anywhere in the cause chain
// (an activity's ApplicationFailure inside an Update arrives three levels down) answers its 4xx with
// its own message; anything else stays a 500 that says nothing. Failures go through Temporal's
// failure converter first, so the objects are the ones the client really decodes.
import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  DefaultFailureConverter,
  defaultPayloadConverter,
  RetryState,
  TimeoutFailure,
} from '@temporalio/common';
import { ApiError, businessFailure, toHttpError } from '../../api/errors';
import { mapUpdateError } from '../../api/workflow-errors';
import { ErrorType } from '../../workflows/errors';

const converter = new DefaultFailureConverter();
/** Worker → proto Failure → client, as a rejected Update travels. */
const overTheWire = (err: Error): Error => converter.failureToError(converter.errorToFailure(err, defaultPayloadConverter), defaultPayloadConverter);

/** What an activity's failure looks like in the workflow (and so in the Update's rejection). */
const activityFailed = (cause: Error, activityType = 'evaluateExtension') =>
  new ActivityFailure('Activity task failed', activityType, '7', RetryState.NON_RETRYABLE_FAILURE, 'worker@host', cause);

/** A rejected Update as the client throws it. */
const updateFailed = (workflowSide: Error) => new WorkflowUpdateFailedError('Workflow Update failed', overTheWire(workflowSide));

const unknownEntitlement = () => ApplicationFailure.nonRetryable('unknown entitlement(s) for svc_etl: estate_readonly', ErrorType.EntitlementUnknown);

describe('an activity failure inside an Update', () => {
  test('update → activity → ApplicationFailure: the activity\'s type and message', () => {
    const err = updateFailed(activityFailed(unknownEntitlement()));
    // The shape the old mapper missed: the direct cause is the ActivityFailure, without a type.
    expect(err.cause).toBeInstanceOf(ActivityFailure);
    expect(err.cause?.cause).toBeInstanceOf(ApplicationFailure);
    const m = toHttpError(err);
    expect(m).toMatchObject({ status: 422, code: 'entitlement_unknown', message: 'unknown entitlement(s) for svc_etl: estate_readonly', issues: [] });
    expect(m.message).not.toMatch(/\bat .*\.(ts|js)|Activity task failed/);
  });

  test('update → ApplicationFailure without a business type → activity → ApplicationFailure: the activity\'s', () => {
    const wrapped = ApplicationFailure.create({ message: 'approve failed', type: 'Error', cause: activityFailed(ApplicationFailure.nonRetryable('NHI svc_gone is not in the inventory', ErrorType.NhiNotFound), 'checkApprover') });
    expect(toHttpError(updateFailed(wrapped))).toMatchObject({ status: 404, code: 'nhi_not_found', message: 'NHI svc_gone is not in the inventory' });
  });

  test('a workflow that caught the activity\'s failure and threw its own type decides', () => {
    const own = ApplicationFailure.create({ message: 'request is revoked', type: ErrorType.RequestClosed, nonRetryable: true, cause: activityFailed(unknownEntitlement()) });
    expect(toHttpError(updateFailed(own))).toMatchObject({ status: 409, code: 'conflict', message: 'request is revoked' });
  });

  test('through a child workflow as well', () => {
    const child = new ChildWorkflowFailure('default', { workflowId: 'leak-svc_etl', runId: 'r1' }, 'leakContainment', RetryState.NON_RETRYABLE_FAILURE, activityFailed(ApplicationFailure.nonRetryable('svc_etl is offboarded', ErrorType.NhiNotActive), 'stageRotation'));
    expect(toHttpError(updateFailed(child))).toMatchObject({ status: 409, code: 'nhi_not_active', message: 'svc_etl is offboarded' });
  });

  test('a workflow that failed (result(), signal-with-start) maps the same way', () => {
    const err = new WorkflowFailedError('Workflow execution failed', overTheWire(activityFailed(unknownEntitlement())), RetryState.NON_RETRYABLE_FAILURE);
    expect(toHttpError(err)).toMatchObject({ status: 422, code: 'entitlement_unknown' });
  });

  test('mapUpdateError gives the routes an ApiError; a vanished workflow is still a 409', () => {
    const mapped = mapUpdateError(updateFailed(activityFailed(unknownEntitlement())));
    expect(mapped).toBeInstanceOf(ApiError);
    expect(mapped).toMatchObject({ status: 422, code: 'entitlement_unknown', message: 'unknown entitlement(s) for svc_etl: estate_readonly' });
    expect(mapUpdateError(new WorkflowNotFoundError('gone', 'jit-x', undefined))).toMatchObject({ status: 409, code: 'conflict' });
    const other = new Error('socket hang up');
    expect(mapUpdateError(other)).toBe(other);
  });
});

describe('validator and handler rejections keep their statuses', () => {
  test.each([
    [ErrorType.SelfApproval, 403, 'self_approval'],
    [ErrorType.NotAllowed, 403, 'forbidden'],
    [ErrorType.AlreadyApproved, 409, 'already_approved'],
    [ErrorType.RequestClosed, 409, 'conflict'],
    [ErrorType.InvalidRequest, 400, 'bad_request'],
    [ErrorType.PolicyDenied, 400, 'policy_denied'],
  ])('%s → %i %s', (type, status, code) => {
    const err = updateFailed(ApplicationFailure.create({ message: `rejected: ${type}`, type }));
    expect(toHttpError(err)).toMatchObject({ status, code, message: `rejected: ${type}` });
  });
});

describe('every failure type has a deliberate status', () => {
  const secretish = 'connect ECONNREFUSED 10.1.2.3:5432 as orchestrator_connector';
  test.each(Object.values(ErrorType))('%s', (type) => {
    const m = toHttpError(updateFailed(activityFailed(ApplicationFailure.create({ message: `${type}: ${secretish}`, type }))));
    expect(m.status).not.toBe(500);
    expect(m.code).not.toBe('internal');
    if (m.status < 500) {
      expect(m.message).toBe(`${type}: ${secretish}`);
    } else {
      // A target's or a dependency's failure: the client learns what kind, not the internals.
      expect([502, 503]).toContain(m.status);
      expect(m.message).not.toContain(secretish);
    }
  });

  test('the 4xx/5xx split', () => {
    const status = (type: string) => toHttpError(updateFailed(activityFailed(ApplicationFailure.create({ message: 'x', type })))).status;
    expect(status(ErrorType.NhiNotFound)).toBe(404);
    expect(status(ErrorType.NhiNotActive)).toBe(409);
    expect(status(ErrorType.SecretMissing)).toBe(409);
    expect(status(ErrorType.EntitlementUnknown)).toBe(422);
    expect(status(ErrorType.PermanentConnector)).toBe(502);
    expect(status(ErrorType.VerificationFailed)).toBe(503);
    expect(status(ErrorType.EnforcementFailed)).toBe(503);
    expect(toHttpError(updateFailed(activityFailed(ApplicationFailure.retryable('x', ErrorType.EnforcementFailed)))).headers).toEqual({ 'Retry-After': '5' });
  });
});

describe('what is not a business failure stays a 500 that says nothing', () => {
  const internal = { status: 500, code: 'internal', message: 'Internal server error', issues: [], headers: {} };

  test('an unknown failure type from an activity', () => {
    const err = updateFailed(activityFailed(ApplicationFailure.retryable('revoke of w_estate_admin from w_svc failed: password authentication failed for user "connector"', 'RevokeFailed')));
    expect(toHttpError(err)).toEqual(internal);
  });

  test('an activity that timed out', () => {
    expect(toHttpError(updateFailed(activityFailed(new TimeoutFailure('activity StartToClose timeout', undefined, 'START_TO_CLOSE'))))).toEqual(internal);
  });

  test('a plain error whose `type` happens to be a failure type is not a Temporal failure', () => {
    const err = Object.assign(new Error('db.internal:5432 said no'), { type: ErrorType.NhiNotFound });
    expect(toHttpError(err)).toEqual(internal);
    expect(toHttpError(new Error('outer', { cause: err }))).toEqual(internal);
  });

  test('the walk is bounded: a very deep chain is not searched, a cyclic one ends', () => {
    let deep: Error = unknownEntitlement();
    for (let i = 0; i < 12; i++) deep = new Error(`level ${i}`, { cause: deep });
    expect(businessFailure(deep)).toBeUndefined();
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(toHttpError(a)).toEqual(internal);
  });
});
