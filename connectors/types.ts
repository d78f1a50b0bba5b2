// The connector contract: one small interface per target system. PostgreSQL is the reference
// connector; others plug in beside it and pass the same contract suite (tests/connectors/contract.ts).
// Every operation is idempotent: Temporal retries activities, so a repeated call must be harmless.

/** What the target reports about one identity right now. */
export interface AccessState {
  exists: boolean;
  canLogin: boolean;
  connectionLimit: number; // -1 = unlimited
  entitlements: string[]; // sorted
}

/** Access to put in place: what the reconciler asks a connector to make true. */
export interface TargetAccess {
  canLogin: boolean;
  connectionLimit: number; // -1 = unlimited
  entitlements: string[];
}

/** What a connector declares about its entitlements (the desired-access rule reads this). */
export interface EntitlementCatalogue {
  grantable: string[];
  /** Entitlements that allow writes: a throttle withholds these. */
  writeCapable: string[];
  /** Write-capable entitlement → the one with the same read access and no writes. */
  readOnlyForm: Record<string, string>;
}

/** Enough to put an identity's access back exactly as it was (throttle/offboard undo). */
export interface AccessSnapshot extends AccessState {
  identity: string;
  takenAt: string; // ISO
}

/**
 * What a login attempt with a credential proved:
 * - `granted`: the target let it in.
 * - `denied`: the target says the credential is wrong (Postgres 28P01). Only this proves that the
 *   target does not hold it.
 * - `inconclusive`: refused for another reason — login not allowed, connection limit reached, no
 *   right to connect, a rule in front of authentication. Never read it as `denied` (the target may
 *   hold the credential) nor as `granted`.
 */
export interface ProbeResult {
  access: 'granted' | 'denied' | 'inconclusive';
  /** The target's code when refused (Postgres SQLSTATE: 28P01 wrong password; 28000, 53300, 42501 inconclusive). */
  code?: string;
  detail?: string;
  /**
   * Inconclusive only: true when the target checked the credential, accepted it, and then refused
   * the login for another reason (Postgres checks the password before login permission, the
   * role's connection limit and CONNECT). Absent when the connector cannot tell.
   */
  credentialAccepted?: boolean;
}

export interface SessionInfo {
  pid: number;
  backendStart: string; // ISO
  state: string | null;
}

export interface ThrottleLevel {
  /** CONNECTION LIMIT to apply. */
  connectionLimit: number;
  /** Remove memberships the connector considers write-capable. */
  removeWriteEntitlements: boolean;
  /** Level 2: refuse login altogether. */
  disableLogin?: boolean;
}

export interface DiscoveredIdentity {
  identity: string;
  canLogin: boolean;
  entitlements: string[];
}

/** What a connector found about its own setup at the target: empty `problems` means ready. */
export interface ConnectorSetup {
  /** Which target and which login, for the start banner (never a credential). */
  target: string;
  /** Problems with the connector's own identity: while any remains, every operation is refused. */
  roleProblems: string[];
  /** Every problem, each saying how to fix it (roleProblems first, then e.g. entitlements it cannot administer). */
  problems: string[];
}

export interface Connector {
  readonly name: string;
  checkSetup(): Promise<ConnectorSetup>;
  /** Entitlements this connector can grant (e.g. the estate's group roles). */
  listGrantableEntitlements(): Promise<string[]>;
  grant(identity: string, entitlement: string): Promise<{ changed: boolean }>;
  revoke(identity: string, entitlement: string): Promise<{ changed: boolean }>;
  hasEntitlement(identity: string, entitlement: string): Promise<boolean>;
  listEntitlements(identity: string): Promise<string[]>;
  /** Set a credential value on the target (the caller generated and stored it; this never logs it). */
  setCredential(identity: string, secretValue: string): Promise<void>;
  /** Terminate live sessions; with `startedBefore`, only those that began earlier. Returns the count ended. */
  invalidateSessions(identity: string, startedBefore?: Date): Promise<{ terminated: number }>;
  listSessions(identity: string): Promise<SessionInfo[]>;
  setLogin(identity: string, enabled: boolean): Promise<{ changed: boolean }>;
  /** Unlike the other reads, an identity that does not exist is an answer (exists: false), not an error. */
  readAccess(identity: string): Promise<AccessState>;
  snapshot(identity: string): Promise<AccessSnapshot>;
  /**
   * Returns the snapshot taken just before throttling. On a retry that snapshot shows the throttled
   * state, so a workflow that must restore exactly takes snapshot() in its own step first.
   */
  throttle(identity: string, level: ThrottleLevel): Promise<AccessSnapshot>;
  /** Put access back exactly as the snapshot says (memberships, login, connection limit). */
  restore(snapshot: AccessSnapshot): Promise<AccessState>;
  /**
   * Make the identity's access exactly `access` (only the differences change), read it back and
   * return it; throws when the target does not end up there. Idempotent.
   */
  apply(identity: string, access: TargetAccess): Promise<AccessState>;
  entitlementCatalogue(): EntitlementCatalogue;
  /** Try to log in with a credential value: granted, denied (wrong credential) or inconclusive, with the target's reason. */
  probe(identity: string, secretValue: string): Promise<ProbeResult>;
  listIdentities(): Promise<DiscoveredIdentity[]>;
  /**
   * Optional: may an NHI be registered for this identity? Refuses what the connector must never
   * manage as an NHI — administrators (superusers), its own login, group roles behind entitlements,
   * built-in roles, roles it has no admin rights on. Registration calls it when the connector offers it.
   */
  checkRegistrable?(identity: string): Promise<RegistrableVerdict>;
  close(): Promise<void>;
}

/** checkRegistrable's answer: `ok`, or why an NHI may not be registered for the identity. */
export type RegistrableVerdict = { ok: true } | { ok: false; reason: string };

/** Codes of PermanentConnectorError, shared by all connectors (activities map them to failure types). */
export const ConnectorErrorCode = {
  UnknownIdentity: 'unknown_identity',
  UnknownEntitlement: 'unknown_entitlement',
  /** The entitlement exists but this connector is not configured to grant (or revoke) it. */
  EntitlementNotGrantable: 'entitlement_not_grantable',
  /** The identity exists but the connector does not administer it. */
  IdentityNotManaged: 'identity_not_managed',
  InvalidName: 'invalid_name',
  InvalidArgument: 'invalid_argument',
  UnsupportedCredential: 'unsupported_credential',
  /** Access that the connector cannot remove (e.g. a membership granted by another administrator). */
  RevokeBlocked: 'revoke_blocked',
  InsufficientPrivilege: 'insufficient_privilege',
  /** The connector itself is set up wrongly (e.g. it connects as a superuser). */
  Misconfigured: 'connector_misconfigured',
  /** An inventory record names a connector that is not configured (a bad record, not a target problem). */
  UnknownConnector: 'unknown_connector',
} as const;
export type ConnectorErrorCode = (typeof ConnectorErrorCode)[keyof typeof ConnectorErrorCode];

/** Thrown for failures that retrying cannot fix (unknown identity, unknown entitlement). */
export class PermanentConnectorError extends Error {
  constructor(message: string, readonly code: ConnectorErrorCode | (string & {})) {
    super(message);
    this.name = 'PermanentConnectorError';
  }
}
