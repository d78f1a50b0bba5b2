// The one rule for target failures, row by row: what retries, what stops, what counts as done.
import { ApplicationFailure } from '@temporalio/common';
import { ConnectorErrorCode, PermanentConnectorError } from '../../connectors/types';
import { ReconcileError } from '../../enforcement/reconciler';
import { atTarget, targetFailure } from '../../enforcement/target-failures';
import { ErrorType } from '../../workflows/errors';

const blocked = () => new PermanentConnectorError('membership granted by another administrator', ConnectorErrorCode.RevokeBlocked);

test.each([
  ['a permanent connector error, removing access: retried (never abandoned)', blocked(), 'never-abandon', { type: ErrorType.EnforcementFailed, nonRetryable: false }],
  ['a permanent connector error, adding access: stops', blocked(), 'stop-on-permanent', { type: ErrorType.PermanentConnector, nonRetryable: true }],
  ['a permanent reconcile error, adding access: stops', new ReconcileError('refused', 'insufficient_privilege', true), 'stop-on-permanent', { type: ErrorType.PermanentConnector, nonRetryable: true }],
  ['not converged yet: retried either way', new ReconcileError('not there yet', 'not_converged', false), 'stop-on-permanent', { type: ErrorType.EnforcementFailed, nonRetryable: false }],
  ['the target is down: retried', new Error('connect ECONNREFUSED'), 'stop-on-permanent', { type: ErrorType.EnforcementFailed, nonRetryable: false }],
  ['an NHI missing from the inventory: stops either way', new ReconcileError('NHI x is not in the inventory', 'nhi_not_found', true), 'never-abandon', { type: ErrorType.NhiNotFound, nonRetryable: true }],
] as const)('%s', (_name, err, onPermanent, expected) => {
  const f = targetFailure('revoking estate_writer', err, onPermanent);
  expect(f).toBeInstanceOf(ApplicationFailure);
  expect({ type: f.type, nonRetryable: f.nonRetryable }).toEqual(expected);
  expect(f.message).toContain(err.message);
});

test('an ApplicationFailure already decided passes through unchanged', () => {
  const own = ApplicationFailure.nonRetryable('withheld', ErrorType.AccessWithheld);
  expect(targetFailure('x', own, 'never-abandon')).toBe(own);
});

test('a vanished identity is done where the caller says what that means', async () => {
  const gone = () => Promise.reject(new PermanentConnectorError('unknown identity "x"', ConnectorErrorCode.UnknownIdentity));
  await expect(atTarget('ending sessions', 'never-abandon', gone, { value: { terminated: 0 } })).resolves.toEqual({ terminated: 0 });
  await expect(atTarget('setting a credential', 'stop-on-permanent', gone)).rejects.toMatchObject({ type: ErrorType.PermanentConnector, nonRetryable: true });
});
