// What the AWS IAM connector writes at the target besides group memberships and attached policies:
// its own inline policies, named here once, and how identities are named (`user/NAME`, `role/NAME`;
// a bare name is a user). IAM names allow letters, digits and + = , . @ _ - only, so a name with
// anything else cannot exist at the target.
import { ConnectorErrorCode, PermanentConnectorError } from './types';

/** Deny everything: the identity's login is off (an explicit deny wins over every allow). */
export const LOGIN_DISABLED_POLICY = 'nhi-login-disabled';
/** Deny everything but reads: the throttle. Its statement id records the throttle's connection limit. */
export const THROTTLE_POLICY = 'nhi-throttle';
/** Deny to role sessions whose token was issued before a time (AWS's "revoke active sessions"). */
export const REVOKE_SESSIONS_POLICY = 'nhi-revoke-sessions';

const IAM_NAME = /^[\w+=,.@-]{1,128}$/;

export type IdentityKind = 'user' | 'role';
export interface IamIdentity {
  kind: IdentityKind;
  name: string;
}

export function parseIdentity(identity: string): IamIdentity | undefined {
  if (typeof identity !== 'string' || identity.length === 0 || identity.includes('\0')) {
    throw new PermanentConnectorError('identity name must be a non-empty string without NUL bytes', ConnectorErrorCode.InvalidName);
  }
  const m = /^(user|role)\/(.*)$/.exec(identity);
  const kind: IdentityKind = m ? (m[1] as IdentityKind) : 'user';
  const name = m ? m[2] : identity;
  // IAM allows 64 characters for user and role names alike.
  return IAM_NAME.test(name) && name.length <= 64 ? { kind, name } : undefined;
}

export const isIamName = (name: string) => IAM_NAME.test(name);

const doc = (statement: Record<string, unknown>) => JSON.stringify({ Version: '2012-10-17', Statement: [statement] });

export const loginDisabledDocument = () => doc({ Sid: 'NhiLoginDisabled', Effect: 'Deny', Action: '*', Resource: '*' });

/** Reads stay (Get*, List*, Describe*, and who-am-I); every other action is denied. */
export const throttleDocument = (connectionLimit: number) =>
  doc({
    Sid: `NhiThrottleLimit${connectionLimit}`,
    Effect: 'Deny',
    NotAction: ['*:Get*', '*:List*', '*:Describe*', '*:Head*', 'sts:GetCallerIdentity'],
    Resource: '*',
  });

export const revokeSessionsDocument = (before: Date) =>
  doc({ Sid: 'NhiRevokeOlderSessions', Effect: 'Deny', Action: '*', Resource: '*', Condition: { DateLessThan: { 'aws:TokenIssueTime': before.toISOString() } } });

/** The connection limit a throttle policy records (from the target's copy of the document). */
export function throttleLimitOf(document: string | undefined): number {
  if (!document) return -1;
  const text = document.startsWith('%7B') || document.startsWith('%7b') ? decodeURIComponent(document) : document;
  const m = /"Sid"\s*:\s*"NhiThrottleLimit(\d+)"/.exec(text);
  return m ? Number(m[1]) : 0;
}

/** An access key as the secret store keeps it: `ACCESS_KEY_ID:SECRET_ACCESS_KEY`. */
export function parseAccessKey(value: string): { accessKeyId: string; secretAccessKey: string } | undefined {
  const i = typeof value === 'string' ? value.indexOf(':') : -1;
  if (i <= 0 || i === value.length - 1) return undefined;
  return { accessKeyId: value.slice(0, i), secretAccessKey: value.slice(i + 1) };
}

export const formatAccessKey = (k: { accessKeyId: string; secretAccessKey: string }) => `${k.accessKeyId}:${k.secretAccessKey}`;
