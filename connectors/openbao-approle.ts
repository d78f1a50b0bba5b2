// The OpenBao / Vault AppRole connector: AppRoles are NHIs too. Identity = the role's name under the
// AppRole mount; entitlements = the role's token_policies, under logical names from configuration;
// credentials = secret-ids, issued by Vault (a role can hold many: a second slot); sessions = the
// tokens logged in with the role, found and revoked through their accessors. Login off is a CIDR
// binding no address can match (192.0.2.1/32, a documentation-only range), so Vault itself refuses
// every login; a throttle's connection limit is recorded as a marker policy (Vault has no such
// limit; the throttle's effect is the write-capable policies swapped for their read-only forms).
import type { VaultClient } from '../lib/vault';
import {
  ConnectorErrorCode as Code,
  PermanentConnectorError,
  type AccessSnapshot,
  type AccessState,
  type Connector,
  type ConnectorCapabilities,
  type ConnectorSetup,
  type RegistrableVerdict,
  type DiscoveredIdentity,
  type EntitlementCatalogue,
  type IssuedCredential,
  type ProbeResult,
  type SessionInfo,
  type TargetAccess,
  type ThrottleLevel,
} from './types';
import { catalogueOf, sortNames } from './catalogue';

export interface AppRoleEntitlement {
  policy: string;
  writeCapable?: boolean;
  readOnlyForm?: string;
}

export interface AppRoleConnectorOptions {
  name?: string;
  vault: VaultClient;
  /** The AppRole auth mount (default approle). */
  mount?: string;
  entitlements: Record<string, AppRoleEntitlement>;
}

export const NO_LOGIN_CIDR = '192.0.2.1/32';
const THROTTLE_MARKER = /^nhi-throttle-limit-(\d+)$/;
const ROLE_NAME = /^\w([\w.-]{0,126}\w)?$/;
const GONE: AccessState = { exists: false, canLogin: false, connectionLimit: 0, entitlements: [] };

interface RoleData {
  token_policies?: string[] | null;
  secret_id_bound_cidrs?: string[] | null;
}

export class AppRoleConnector implements Connector {
  readonly name: string;
  readonly capabilities: ConnectorCapabilities = {
    credentials: 'issued',
    secondCredentialSlot: true,
    sessions: 'terminate',
    connectionLimit: false,
    throttle: true,
  };
  private readonly vault: VaultClient;
  private readonly mount: string;
  private readonly entitlements: Map<string, AppRoleEntitlement>;
  private readonly logicalOf: Map<string, string>;

  constructor(options: AppRoleConnectorOptions) {
    this.name = options.name ?? 'openbao';
    this.vault = options.vault;
    this.mount = options.mount ?? 'approle';
    this.entitlements = new Map(Object.entries(options.entitlements));
    this.logicalOf = new Map([...this.entitlements].map(([logical, e]) => [e.policy, logical]));
  }

  private rolePath(name: string, rest = ''): string {
    return `auth/${encodeURIComponent(this.mount)}/role/${encodeURIComponent(name)}${rest}`;
  }

  private validName(identity: string): string | undefined {
    if (typeof identity !== 'string' || identity.length === 0 || identity.includes('\0')) {
      throw new PermanentConnectorError('identity name must be a non-empty string without NUL bytes', Code.InvalidName);
    }
    return ROLE_NAME.test(identity) ? identity : undefined;
  }

  private async role(identity: string): Promise<RoleData | null> {
    const name = this.validName(identity);
    if (!name) return null;
    return (await this.vault.request<{ data: RoleData }>('GET', this.rolePath(name)))?.data ?? null;
  }

  private async existing(identity: string): Promise<RoleData> {
    const r = await this.role(identity);
    if (!r) throw new PermanentConnectorError(`AppRole ${JSON.stringify(identity)} does not exist`, Code.UnknownIdentity);
    return r;
  }

  /** A logical name this connector grants; one that names a real but unmapped policy is not grantable. */
  private async entitlement(logical: string): Promise<AppRoleEntitlement> {
    const e = this.entitlements.get(logical);
    if (e) return e;
    if (typeof logical === 'string' && /^[\w.-]+$/.test(logical) && (await this.vault.request('GET', `sys/policies/acl/${encodeURIComponent(logical)}`))) {
      throw new PermanentConnectorError(`${logical} is a Vault policy this connector is not configured to grant`, Code.EntitlementNotGrantable);
    }
    throw new PermanentConnectorError(`unknown entitlement ${JSON.stringify(logical)}`, Code.UnknownEntitlement);
  }

  private stateOf(r: RoleData): AccessState {
    const policies = r.token_policies ?? [];
    const marker = policies.map((p) => THROTTLE_MARKER.exec(p)).find(Boolean);
    return {
      exists: true,
      canLogin: !(r.secret_id_bound_cidrs ?? []).includes(NO_LOGIN_CIDR),
      connectionLimit: marker ? Number(marker[1]) : -1,
      entitlements: sortNames(policies.flatMap((p) => (this.logicalOf.has(p) ? [this.logicalOf.get(p)!] : []))),
    };
  }

  async checkSetup(): Promise<ConnectorSetup> {
    const target = `OpenBao/Vault AppRoles at ${this.vault.addr} (auth/${this.mount})`;
    try {
      await this.vault.request('LIST', `auth/${encodeURIComponent(this.mount)}/role`);
    } catch (err) {
      const problem = `the connector's Vault token cannot list AppRoles (${(err as Error).message}): give it a policy with list/read/update on auth/${this.mount}/role/* and sudo on auth/token/accessors`;
      return { target, roleProblems: [problem], problems: [problem] };
    }
    const problems: string[] = [];
    for (const [logical, e] of this.entitlements) {
      if (!(await this.vault.request('GET', `sys/policies/acl/${encodeURIComponent(e.policy)}`))) problems.push(`entitlement ${logical}: policy ${e.policy} does not exist`);
    }
    return { target, roleProblems: [], problems };
  }

  async listGrantableEntitlements(): Promise<string[]> {
    return sortNames(this.entitlements.keys());
  }

  entitlementCatalogue(): EntitlementCatalogue {
    return catalogueOf(this.entitlements);
  }

  /** Write the role's policies and login binding; everything else on the role stays as it is. */
  private async write(identity: string, r: RoleData, access: TargetAccess): Promise<void> {
    const unmanaged = (r.token_policies ?? []).filter((p) => !this.logicalOf.has(p) && !THROTTLE_MARKER.test(p));
    const granted = await Promise.all(access.entitlements.map(async (e) => (await this.entitlement(e)).policy));
    const token_policies = [...unmanaged, ...granted, ...(access.connectionLimit >= 0 ? [`nhi-throttle-limit-${access.connectionLimit}`] : [])];
    const own = (r.secret_id_bound_cidrs ?? []).filter((c) => c !== NO_LOGIN_CIDR);
    // Login off replaces the binding: a role with CIDR bindings of its own would lose them, so it is refused.
    if (own.length && !access.canLogin) throw new PermanentConnectorError(`${identity} has CIDR bindings of its own: login cannot be disabled without losing them`, Code.Misconfigured);
    await this.vault.request('POST', this.rolePath(identity), { token_policies, secret_id_bound_cidrs: access.canLogin ? own : [NO_LOGIN_CIDR] });
  }

  async apply(identity: string, access: TargetAccess): Promise<AccessState> {
    if (!Number.isInteger(access.connectionLimit) || access.connectionLimit < -1) throw new PermanentConnectorError(`connection limit must be an integer ≥ -1, got ${access.connectionLimit}`, Code.InvalidArgument);
    const r = await this.existing(identity);
    for (const e of access.entitlements) await this.entitlement(e);
    const before = this.stateOf(r);
    const same = before.canLogin === access.canLogin && before.connectionLimit === access.connectionLimit && before.entitlements.join('\n') === sortNames(access.entitlements).join('\n');
    if (!same) await this.write(identity, r, access);
    const after = await this.readAccess(identity);
    if (after.canLogin !== access.canLogin || after.connectionLimit !== access.connectionLimit || after.entitlements.join('\n') !== sortNames(access.entitlements).join('\n')) {
      throw new Error(`${identity} did not reach the access applied (now ${JSON.stringify(after)})`);
    }
    return after;
  }

  /** May an NHI be registered for this AppRole? It must exist under the connector's mount. */
  async checkRegistrable(identity: string): Promise<RegistrableVerdict> {
    if (!/^[\w.-]{1,128}$/.test(identity)) return { ok: false, reason: `${JSON.stringify(identity)} is not an AppRole name` };
    return (await this.role(identity)) ? { ok: true } : { ok: false, reason: `no AppRole ${JSON.stringify(identity)} exists at the target` };
  }

  async readAccess(identity: string): Promise<AccessState> {
    const r = await this.role(identity);
    return r ? this.stateOf(r) : { ...GONE };
  }

  private async change(identity: string, entitlement: string, add: boolean): Promise<{ changed: boolean }> {
    const r = await this.existing(identity);
    await this.entitlement(entitlement);
    const now = this.stateOf(r);
    if (now.entitlements.includes(entitlement) === add) return { changed: false };
    const entitlements = add ? [...now.entitlements, entitlement] : now.entitlements.filter((e) => e !== entitlement);
    await this.apply(identity, { ...now, entitlements });
    return { changed: true };
  }

  grant(identity: string, entitlement: string) {
    return this.change(identity, entitlement, true);
  }

  revoke(identity: string, entitlement: string) {
    return this.change(identity, entitlement, false);
  }

  async hasEntitlement(identity: string, entitlement: string): Promise<boolean> {
    const r = await this.existing(identity);
    if (!this.entitlements.has(entitlement)) {
      try {
        await this.entitlement(entitlement);
      } catch (err) {
        if ((err as PermanentConnectorError).code === Code.EntitlementNotGrantable) return false;
        throw err;
      }
    }
    return this.stateOf(r).entitlements.includes(entitlement);
  }

  async listEntitlements(identity: string): Promise<string[]> {
    return this.stateOf(await this.existing(identity)).entitlements;
  }

  async setLogin(identity: string, enabled: boolean): Promise<{ changed: boolean }> {
    const now = this.stateOf(await this.existing(identity));
    if (now.canLogin === enabled) return { changed: false };
    await this.apply(identity, { ...now, canLogin: enabled });
    return { changed: true };
  }

  async snapshot(identity: string): Promise<AccessSnapshot> {
    return { identity, ...this.stateOf(await this.existing(identity)), takenAt: new Date().toISOString() };
  }

  async throttle(identity: string, level: ThrottleLevel): Promise<AccessSnapshot> {
    if (!Number.isInteger(level.connectionLimit) || level.connectionLimit < -1) throw new PermanentConnectorError(`connection limit must be an integer ≥ -1, got ${level.connectionLimit}`, Code.InvalidArgument);
    const before = await this.snapshot(identity);
    const writeCapable = new Set(this.entitlementCatalogue().writeCapable);
    await this.apply(identity, {
      entitlements: level.removeWriteEntitlements ? before.entitlements.filter((e) => !writeCapable.has(e)) : before.entitlements,
      canLogin: level.disableLogin ? false : before.canLogin,
      connectionLimit: level.connectionLimit,
    });
    return before;
  }

  async restore(snapshot: AccessSnapshot): Promise<AccessState> {
    if (!snapshot.exists) throw new PermanentConnectorError('cannot restore a snapshot of an identity that did not exist', Code.InvalidArgument);
    return this.apply(snapshot.identity, snapshot);
  }

  async setCredential(identity: string, _secretValue: string): Promise<void> {
    await this.existing(identity);
    throw new PermanentConnectorError(`Vault issues secret-ids itself: ${identity}'s credential is rotated with issueCredential, not set`, Code.UnsupportedCredential);
  }

  private async roleId(identity: string): Promise<string> {
    return (await this.vault.request<{ data: { role_id: string } }>('GET', this.rolePath(identity, '/role-id')))!.data.role_id;
  }

  /** Tokens logged in with this role (accessor, issue time). Needs sudo on auth/token/accessors. */
  private async tokens(identity: string): Promise<{ accessor: string; issuedAt: string }[]> {
    const keys = (await this.vault.request<{ data: { keys: string[] } }>('LIST', 'auth/token/accessors'))?.data.keys ?? [];
    const out: { accessor: string; issuedAt: string }[] = [];
    for (const accessor of keys) {
      const t = await this.vault.request<{ data: { meta?: Record<string, string> | null; path?: string; issue_time?: string } }>('POST', 'auth/token/lookup-accessor', { accessor }).catch(() => null);
      const d = t?.data;
      if (d?.meta?.role_name === identity && d.path === `auth/${this.mount}/login`) out.push({ accessor, issuedAt: d.issue_time ?? new Date(0).toISOString() });
    }
    return out.sort((a, b) => (a.issuedAt < b.issuedAt ? -1 : 1));
  }

  async listSessions(identity: string): Promise<SessionInfo[]> {
    await this.existing(identity);
    return (await this.tokens(identity)).map((t) => ({ pid: -1, id: t.accessor, backendStart: t.issuedAt, state: 'token' }));
  }

  async invalidateSessions(identity: string, startedBefore?: Date): Promise<{ terminated: number }> {
    await this.existing(identity);
    let terminated = 0;
    for (const t of await this.tokens(identity)) {
      if (startedBefore && Date.parse(t.issuedAt) >= startedBefore.getTime()) continue;
      await this.vault.request('POST', 'auth/token/revoke-accessor', { accessor: t.accessor });
      terminated++;
    }
    return { terminated };
  }

  /** A real AppRole login with the secret-id; the token it yields is revoked at once. */
  async probe(identity: string, secretValue: string): Promise<ProbeResult> {
    const r = await this.role(identity);
    if (!r) return { access: 'denied', code: 'unknown_role' };
    const login = await this.vault.tryAppRoleLogin(await this.roleId(identity), secretValue, this.mount);
    if (login.status === 200) {
      if (login.accessor) await this.vault.request('POST', 'auth/token/revoke-accessor', { accessor: login.accessor });
      return { access: 'granted' };
    }
    const why = login.errors.join('; ');
    // Vault checks the secret-id before the role's CIDR binding: a CIDR refusal means the secret-id is valid.
    if (login.status === 400 && /unauthorized by CIDR/.test(why)) return { access: 'inconclusive', code: 'login_disabled', credentialAccepted: true, refusedBy: 'login_disabled', detail: why };
    if (login.status === 400 && /invalid role or secret ID/.test(why)) return { access: 'denied', code: 'invalid_secret_id', detail: why };
    // Vault's user lockout (default: 5 failed logins within 15 minutes, e.g. someone trying a leaked
    // secret-id) refuses every login of the role, valid secret-ids too: nothing can be proven until
    // it lifts, so the step fails (and is retried) rather than call a credential dead or alive.
    if (/permission denied/.test(why)) {
      throw new Error(`AppRole logins as ${identity} are refused by the user lockout (repeated failed logins): nothing can be verified until it lifts (the mount's lockout_duration, 15 minutes by default) or an operator unlocks the role (sys/locked-users/<mount accessor>/unlock/<role_id>)`);
    }
    throw new Error(`AppRole login as ${identity} failed (${login.status}): ${why}`);
  }

  async issueCredential(identity: string, _opts: { replacing?: string }): Promise<IssuedCredential> {
    await this.existing(identity);
    const out = await this.vault.request<{ data: { secret_id: string; secret_id_accessor: string } }>('POST', this.rolePath(identity, '/secret-id'), {});
    return { value: out!.data.secret_id, id: out!.data.secret_id_accessor, removedFirst: [] };
  }

  async retireCredential(identity: string, secretValue: string): Promise<{ removed: boolean }> {
    await this.existing(identity);
    const found = await this.vault.request<{ data?: unknown }>('POST', this.rolePath(identity, '/secret-id/lookup'), { secret_id: secretValue });
    if (!found?.data) return { removed: false };
    await this.vault.request('POST', this.rolePath(identity, '/secret-id/destroy'), { secret_id: secretValue });
    return { removed: true };
  }

  /** The accessors of every secret-id the role holds. */
  async listCredentialIds(identity: string): Promise<string[]> {
    await this.existing(identity);
    return ((await this.vault.request<{ data: { keys: string[] } }>('LIST', this.rolePath(identity, '/secret-id')))?.data.keys ?? []).sort();
  }

  /** Destroy one secret-id through its accessor; an accessor the role does not hold removes nothing. */
  async retireCredentialById(identity: string, credentialId: string): Promise<{ removed: boolean }> {
    if (!(await this.listCredentialIds(identity)).includes(credentialId)) return { removed: false };
    await this.vault.request('POST', this.rolePath(identity, '/secret-id-accessor/destroy'), { secret_id_accessor: credentialId });
    return { removed: true };
  }

  /** Offboarding: every secret-id destroyed (through its accessor), every token of the role revoked. */
  async retireAllCredentials(identity: string): Promise<{ removed: string[] }> {
    if (!(await this.role(identity))) return { removed: [] };
    const accessors = (await this.vault.request<{ data: { keys: string[] } }>('LIST', this.rolePath(identity, '/secret-id')))?.data.keys ?? [];
    for (const a of accessors) await this.vault.request('POST', this.rolePath(identity, '/secret-id-accessor/destroy'), { secret_id_accessor: a });
    await this.invalidateSessions(identity);
    return { removed: accessors };
  }

  async listIdentities(): Promise<DiscoveredIdentity[]> {
    const names = (await this.vault.request<{ data: { keys: string[] } }>('LIST', `auth/${encodeURIComponent(this.mount)}/role`))?.data.keys ?? [];
    const out: DiscoveredIdentity[] = [];
    for (const n of names.sort()) {
      const a = await this.readAccess(n);
      if (a.exists) out.push({ identity: n, canLogin: a.canLogin, entitlements: a.entitlements });
    }
    return out;
  }

  async close(): Promise<void> {}
}
