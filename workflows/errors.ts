// Failure types shared by workflows, activities and the API. ApplicationFailure carries `type` as a
// string, so these survive bundling where class names would not.
export const ErrorType = {
  NhiNotFound: 'NhiNotFound',
  NhiNotActive: 'NhiNotActive',
  EntitlementUnknown: 'EntitlementUnknown',
  PermanentConnector: 'PermanentConnectorError',
  PolicyDenied: 'PolicyDenied',
  VerificationFailed: 'VerificationFailed',
  InvalidRequest: 'InvalidRequest',
  RequestClosed: 'RequestClosed',
  SelfApproval: 'SelfApproval',
  AlreadyApproved: 'AlreadyApproved',
  NotAllowed: 'NotAllowed',
  SecretMissing: 'SecretMissing',
  /** A target that has not (yet) reached the enforced state: retryable, escalated after a few attempts. */
  EnforcementFailed: 'EnforcementFailed',
  /** A restriction (throttle, quarantine, offboarding) withholds what a step would grant: retrying cannot help. */
  AccessWithheld: 'AccessWithheld',
  /** The inventory record names a connector that is not configured: a bad record, never retried. */
  UnknownConnector: 'UnknownConnector',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Types that retrying cannot fix: activity retries stop at once for these. */
export const NON_RETRYABLE: string[] = [
  ErrorType.NhiNotFound,
  ErrorType.NhiNotActive,
  ErrorType.EntitlementUnknown,
  ErrorType.PermanentConnector,
  ErrorType.PolicyDenied,
  ErrorType.InvalidRequest,
  ErrorType.SecretMissing,
  ErrorType.AccessWithheld,
  ErrorType.UnknownConnector,
];

/** What went wrong, for timelines and audit: an activity failure's own message (its cause), else the error's. */
export function causeMessage(err: unknown): string {
  if (err instanceof Error) return err.cause instanceof Error ? err.cause.message : err.message;
  return String(err);
}
