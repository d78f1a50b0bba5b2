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

/** Enough to put an identity's access back exactly as it was (throttle/offboard undo). */
export interface AccessSnapshot extends AccessState {
  identity: string;
  takenAt: string; // ISO
}

export interface ProbeResult {
  access: 'granted' | 'denied';
  /** Postgres SQLSTATE or connector-specific code when denied (28P01 wrong password, 28000 no login). */
  code?: string;
  detail?: string;
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

export interface Connector {
  readonly name: string;
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
  readAccess(identity: string): Promise<AccessState>;
  snapshot(identity: string): Promise<AccessSnapshot>;
  throttle(identity: string, level: ThrottleLevel): Promise<AccessSnapshot>;
  /** Put access back exactly as the snapshot says (memberships, login, connection limit). */
  restore(snapshot: AccessSnapshot): Promise<AccessState>;
  /** Try to log in with a credential value: granted or denied, with the target's reason. */
  probe(identity: string, secretValue: string): Promise<ProbeResult>;
  listIdentities(): Promise<DiscoveredIdentity[]>;
  close(): Promise<void>;
}

/** Thrown for failures that retrying cannot fix (unknown identity, unknown entitlement). */
export class PermanentConnectorError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'PermanentConnectorError';
  }
}
