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
  /**
   * Inconclusive only, target-neutral: which restriction refused a credential it accepted (login
   * off, connection limit reached). Absent when the connector cannot tell.
   */
  refusedBy?: 'login_disabled' | 'connection_limit';
}

export interface SessionInfo {
  /** A Postgres backend pid; -1 where sessions have another kind of id (`id`). */
  pid: number;
  /** The target's id of the session when it is not a pid (a Vault token accessor). */
  id?: string;
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
  /** Long-lived credentials the target holds for it, where the target lists them (AWS access keys). */
  credentials?: { id: string; status: string; createdAt?: string; lastUsedAt?: string | null }[];
}

/**
 * What a connector can do, declared so that scenarios and policies ask the capability, never the
 * connector's name.
 */
export interface ConnectorCapabilities {
  /**
   * Who makes a new credential: `set` — the orchestrator generates the value and `setCredential`
   * puts it at the target (a password); `issued` — the target makes it (`issueCredential`, an AWS
   * access key) and the old one is removed by `retireCredential`.
   */
  credentials: 'set' | 'issued' | 'none';
  /** The identity can hold a second credential while the first still works (rotation without a gap). */
  secondCredentialSlot: boolean;
  /**
   * `terminate`: live sessions are listed and ended one by one (Postgres backends).
   * `revoke_issued_before`: no list; tokens issued before a time are refused (an AWS role's sessions).
   * `none`: nothing to end beyond the credential itself (an AWS user's key: STS credentials already
   * issued from it live until they expire).
   */
  sessions: 'terminate' | 'revoke_issued_before' | 'none';
  /** The target enforces a connection limit; when false a throttle's limit is recorded, and writes are denied instead. */
  connectionLimit: boolean;
  /** A throttle is enforced at the target (write-capable access withheld, or writes denied). */
  throttle: boolean;
}

/** What `issueCredential` did: the new value (never logged) and which old credentials went first. */
export interface IssuedCredential {
  value: string;
  /** Target-side id of the new credential (an access key id: not a secret). */
  id: string;
  /** Credentials removed before issuing, to stay within the target's limit (e.g. AWS's two keys per user). */
  removedFirst: string[];
  /** The part of `value` a scanner finds and hashes alone, when the value is composite (an AWS secret access key). */
  secretPart?: string;
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
  readonly capabilities: ConnectorCapabilities;
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
   * capabilities.credentials === 'issued' only: have the target make a new credential. `replacing`
   * is the value being rotated out: when the target's limit is reached, it is removed first (and
   * the other credential kept); the result says what was removed.
   */
  issueCredential?(identity: string, opts: { replacing?: string }): Promise<IssuedCredential>;
  /** capabilities.credentials === 'issued' only: remove a credential from the target (idempotent). */
  retireCredential?(identity: string, secretValue: string): Promise<{ removed: boolean }>;
  /**
   * capabilities.credentials === 'issued' only, for offboarding: remove every credential the target
   * holds for the identity, also those the orchestrator never issued. An identity that is gone has none.
   */
  retireAllCredentials?(identity: string): Promise<{ removed: string[] }>;
  /**
   * capabilities.credentials === 'issued' only: the ids of every credential the target holds for the
   * identity (AWS access key ids, secret-id accessors), so a retried staging can find one a crashed
   * attempt issued and nobody stored.
   */
  listCredentialIds?(identity: string): Promise<string[]>;
  /** capabilities.credentials === 'issued' only: remove one credential by its id (idempotent: an unknown id removes nothing). */
  retireCredentialById?(identity: string, credentialId: string): Promise<{ removed: boolean }>;
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
  /** The NHI names a connector this deployment is not configured with. */
  UnknownConnector: 'unknown_connector',
  /** The connector itself is set up wrongly (e.g. it connects as a superuser). */
  Misconfigured: 'connector_misconfigured',
} as const;
export type ConnectorErrorCode = (typeof ConnectorErrorCode)[keyof typeof ConnectorErrorCode];

/** Thrown for failures that retrying cannot fix (unknown identity, unknown entitlement). */
export class PermanentConnectorError extends Error {
  constructor(message: string, readonly code: ConnectorErrorCode | (string & {})) {
    super(message);
    this.name = 'PermanentConnectorError';
  }
}
