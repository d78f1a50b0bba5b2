// The shared connector contract: every connector passes this suite against its real target system.
// Assertions read the target's state through `inspect` (independent of the connector under test),
// so "granted" and "gone" are what the target says, not what the connector reports.
// Entitlements are named as the connector speaks of them (logical names, e.g. `estate_admin`, which
// may differ from the target's names, e.g. a prefixed group role): `inspect.memberships` reads the
// target and names what it finds by the fixture's own mapping, so a connector that maps a name onto
// the wrong target object fails.
import { ConnectorErrorCode, PermanentConnectorError, type AccessSnapshot, type Connector } from '../../connectors/types';

export interface ContractSession {
  /** Target-side id of the session (a backend pid for Postgres). */
  id: number | string;
  close(): Promise<void>;
}

export interface ContractTarget {
  connector: Connector;
  /** Names as the connector speaks of them. */
  entitlements: {
    /** Grantable, not write-capable. */
    readOnly: string;
    /** Grantable and write-capable (throttle removes it). */
    writeCapable: string;
    /** Exists on the target but the connector must refuse to grant it. */
    notGrantable: string;
    /** Grantable, with a name built to break naive quoting. */
    hostile: string;
  };
  /** A name built to break naive quoting, usable as an identity by newIdentity. */
  hostileIdentityName: string;
  /** A fresh identity the connector manages, able to log in with `secret`, holding no entitlement. */
  newIdentity(name?: string): Promise<{ identity: string; secret: string }>;
  newSecret(): string;
  inspect: {
    /** Read from the target, named as the connector should name them (see the top of this file); sorted. */
    memberships(identity: string): Promise<string[]>;
    /** null when the identity does not exist. */
    account(identity: string): Promise<{ canLogin: boolean; connectionLimit: number } | null>;
    sessionAlive(id: ContractSession['id']): Promise<boolean>;
    /** False when something a hostile name tried to destroy is gone. */
    canaryIntact(): Promise<boolean>;
  };
  openSession(identity: string, secret: string): Promise<ContractSession>;
  /**
   * The target's refusal codes (Postgres: 28P01 wrong credential → denied; 28000 login disabled and
   * 53300 connection limit reached → inconclusive).
   */
  codes: { wrongCredential: string; loginDisabled: string; connectionLimit: string };
  teardown(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs: string[]) => [...xs].sort();
const withoutTakenAt = ({ takenAt: _takenAt, ...rest }: AccessSnapshot) => rest;

async function expectPermanent(p: Promise<unknown>, code: string): Promise<PermanentConnectorError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PermanentConnectorError);
  expect((err as PermanentConnectorError).code).toBe(code);
  return err as PermanentConnectorError;
}

/**
 * Put a new credential in place the way the connector's capabilities say: set a generated value
 * (`set`), or have the target issue one and retire the old (`issued`). Returns the new value.
 */
export async function rotateCredential(t: ContractTarget, identity: string, old: string): Promise<string> {
  const c = t.connector;
  if (c.capabilities.credentials === 'set') {
    const fresh = t.newSecret();
    await c.setCredential(identity, fresh);
    return fresh;
  }
  const issued = await c.issueCredential!(identity, { replacing: old });
  await c.retireCredential!(identity, old);
  return issued.value;
}

/**
 * `capabilities` (the connector's own declaration) decides which cases apply: connection limits
 * and listable sessions are tested only where the target has them; credentials are rotated as the
 * connector says it rotates them.
 */
export function runConnectorContract(name: string, setup: () => Promise<ContractTarget>, capabilities: { connectionLimit: boolean; sessions: 'terminate' | 'revoke_issued_before' | 'none' }): void {
  const ifLimits = capabilities.connectionLimit ? test : test.skip;
  const ifSessions = capabilities.sessions === 'terminate' ? test : test.skip;
  describe(`${name} connector contract`, () => {
    let t: ContractTarget;
    let c: Connector;
    const sessions: ContractSession[] = [];
    const open = async (identity: string, secret: string) => {
      const s = await t.openSession(identity, secret);
      sessions.push(s);
      return s;
    };

    beforeAll(async () => {
      t = await setup();
      c = t.connector;
    });
    afterEach(async () => {
      await Promise.all(sessions.splice(0).map((s) => s.close().catch(() => undefined)));
    });
    afterAll(async () => {
      await t?.teardown();
    });

    test('declares the capabilities the suite was told of', () => {
      expect(c.capabilities).toMatchObject(capabilities);
      if (c.capabilities.credentials === 'issued') {
        expect(typeof c.issueCredential).toBe('function');
        expect(typeof c.retireCredential).toBe('function');
      }
    });

    test('checkSetup names its target and, set up as documented, finds no problem', async () => {
      const setup = await c.checkSetup();
      expect(setup.target).toEqual(expect.any(String));
      expect(setup.target.length).toBeGreaterThan(0);
      expect(setup).toMatchObject({ roleProblems: [], problems: [] });
    });

    test('lists what it can grant, and nothing it may not', async () => {
      const grantable = await c.listGrantableEntitlements();
      expect(grantable).toEqual(expect.arrayContaining([t.entitlements.readOnly, t.entitlements.writeCapable, t.entitlements.hostile]));
      expect(grantable).not.toContain(t.entitlements.notGrantable);
      expect(grantable).toEqual(sorted(grantable));
    });

    test('grant → read back → revoke → read back gone, each idempotent', async () => {
      const { identity } = await t.newIdentity();
      const ent = t.entitlements.readOnly;

      expect(await c.grant(identity, ent)).toEqual({ changed: true });
      expect(await t.inspect.memberships(identity)).toEqual([ent]);
      expect(await c.hasEntitlement(identity, ent)).toBe(true);
      expect(await c.listEntitlements(identity)).toEqual([ent]);

      expect(await c.grant(identity, ent)).toEqual({ changed: false });
      expect(await t.inspect.memberships(identity)).toEqual([ent]);

      expect(await c.revoke(identity, ent)).toEqual({ changed: true });
      expect(await t.inspect.memberships(identity)).toEqual([]);
      expect(await c.hasEntitlement(identity, ent)).toBe(false);
      expect(await c.listEntitlements(identity)).toEqual([]);

      expect(await c.revoke(identity, ent)).toEqual({ changed: false });
      expect(await t.inspect.memberships(identity)).toEqual([]);
    });

    test('entitlements are listed sorted and independently', async () => {
      const { identity } = await t.newIdentity();
      await c.grant(identity, t.entitlements.writeCapable);
      await c.grant(identity, t.entitlements.readOnly);
      const expected = sorted([t.entitlements.readOnly, t.entitlements.writeCapable]);
      expect(await c.listEntitlements(identity)).toEqual(expected);
      expect(sorted(await t.inspect.memberships(identity))).toEqual(expected);
      await c.revoke(identity, t.entitlements.writeCapable);
      expect(await t.inspect.memberships(identity)).toEqual([t.entitlements.readOnly]);
    });

    test('unknown identity is a permanent error for every operation, and changes nothing', async () => {
      const ghost = `ghost_${Date.now().toString(36)}`;
      const ent = t.entitlements.readOnly;
      const U = ConnectorErrorCode.UnknownIdentity;
      await expectPermanent(c.grant(ghost, ent), U);
      await expectPermanent(c.revoke(ghost, ent), U);
      await expectPermanent(c.hasEntitlement(ghost, ent), U);
      await expectPermanent(c.listEntitlements(ghost), U);
      await expectPermanent(c.setCredential(ghost, t.newSecret()), U);
      await expectPermanent(c.invalidateSessions(ghost), U);
      await expectPermanent(c.listSessions(ghost), U);
      await expectPermanent(c.setLogin(ghost, false), U);
      await expectPermanent(c.snapshot(ghost), U);
      await expectPermanent(c.throttle(ghost, { connectionLimit: 0, removeWriteEntitlements: true }), U);
      await expectPermanent(
        c.restore({ identity: ghost, exists: true, canLogin: true, connectionLimit: -1, entitlements: [], takenAt: new Date().toISOString() }),
        U,
      );
      expect(await c.readAccess(ghost)).toEqual({ exists: false, canLogin: false, connectionLimit: 0, entitlements: [] });
      expect(await t.inspect.account(ghost)).toBeNull();
      expect((await c.probe(ghost, t.newSecret())).access).toBe('denied');
    });

    test('unknown and non-grantable entitlements are permanent errors, and nothing is granted', async () => {
      const { identity } = await t.newIdentity();
      const ghost = `ghost_group_${Date.now().toString(36)}`;
      await expectPermanent(c.grant(identity, ghost), ConnectorErrorCode.UnknownEntitlement);
      await expectPermanent(c.revoke(identity, ghost), ConnectorErrorCode.UnknownEntitlement);
      await expectPermanent(c.hasEntitlement(identity, ghost), ConnectorErrorCode.UnknownEntitlement);
      await expectPermanent(c.grant(identity, t.entitlements.notGrantable), ConnectorErrorCode.EntitlementNotGrantable);
      expect(await t.inspect.memberships(identity)).toEqual([]);
      expect(await c.hasEntitlement(identity, t.entitlements.notGrantable)).toBe(false);
    });

    test('a secret never appears in an error', async () => {
      const secret = t.newSecret();
      const err = await c.setCredential(`ghost_${Date.now().toString(36)}`, secret).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect(`${(err as Error).message} ${JSON.stringify(err)} ${(err as Error).stack}`).not.toContain(secret);
    });

    test('hostile names are handled as data: no injection, every operation works', async () => {
      const hostileEnt = t.entitlements.hostile;
      const { identity, secret } = await t.newIdentity(t.hostileIdentityName);
      expect(identity).toBe(t.hostileIdentityName);

      expect(await c.grant(identity, hostileEnt)).toEqual({ changed: true });
      expect(await t.inspect.memberships(identity)).toEqual([hostileEnt]);
      expect(await c.hasEntitlement(identity, hostileEnt)).toBe(true);
      expect((await c.listIdentities()).find((d) => d.identity === identity)?.entitlements).toEqual([hostileEnt]);

      if (c.capabilities.sessions === 'terminate') {
        const session = await open(identity, secret);
        expect(await c.invalidateSessions(identity)).toEqual({ terminated: 1 });
        expect(await t.inspect.sessionAlive(session.id)).toBe(false);
      } else {
        await c.invalidateSessions(identity);
      }

      const fresh = await rotateCredential(t, identity, secret);
      expect((await c.probe(identity, fresh)).access).toBe('granted');

      const before = await c.throttle(identity, { connectionLimit: 0, removeWriteEntitlements: true, disableLogin: true });
      expect(await t.inspect.account(identity)).toEqual({ canLogin: false, connectionLimit: 0 });
      await c.restore(before);
      expect(await t.inspect.account(identity)).toEqual({ canLogin: true, connectionLimit: -1 });

      expect(await c.revoke(identity, hostileEnt)).toEqual({ changed: true });
      expect(await t.inspect.memberships(identity)).toEqual([]);
      expect(await t.inspect.canaryIntact()).toBe(true);
    });

    test('hostile names that do not exist are rejected without effect', async () => {
      const { identity } = await t.newIdentity();
      const hostile = [`x"; DROP ROLE whatever; --`, `x'); DROP TABLE t; --`, 'a\\"b', 'ok" WITH SUPERUSER --'];
      for (const h of hostile) {
        await expectPermanent(c.grant(h, t.entitlements.readOnly), ConnectorErrorCode.UnknownIdentity);
        await expectPermanent(c.grant(identity, h), ConnectorErrorCode.UnknownEntitlement);
        await expectPermanent(c.setLogin(h, true), ConnectorErrorCode.UnknownIdentity);
      }
      await expectPermanent(c.grant('', t.entitlements.readOnly), ConnectorErrorCode.InvalidName);
      await expectPermanent(c.grant('nul\0byte', t.entitlements.readOnly), ConnectorErrorCode.InvalidName);
      expect(await t.inspect.memberships(identity)).toEqual([]);
      expect(await t.inspect.canaryIntact()).toBe(true);
    });

    test('setLogin disables and enables login, idempotently, as probe observes', async () => {
      const { identity, secret } = await t.newIdentity();
      expect(await c.probe(identity, secret)).toEqual({ access: 'granted' });

      expect(await c.setLogin(identity, false)).toEqual({ changed: true });
      expect((await t.inspect.account(identity))?.canLogin).toBe(false);
      expect(await c.setLogin(identity, false)).toEqual({ changed: false });
      // Refused, but not because the credential is wrong: never `denied`, never `granted`.
      expect(await c.probe(identity, secret)).toMatchObject({ access: 'inconclusive', code: t.codes.loginDisabled });
      expect((await c.probe(identity, secret)).credentialAccepted).not.toBe(false);
      // A wrong credential is still told apart while login is disabled.
      expect(await c.probe(identity, t.newSecret())).toMatchObject({ access: 'denied', code: t.codes.wrongCredential });

      expect(await c.setLogin(identity, true)).toEqual({ changed: true });
      expect(await c.setLogin(identity, true)).toEqual({ changed: false });
      expect((await t.inspect.account(identity))?.canLogin).toBe(true);
      expect(await c.probe(identity, secret)).toEqual({ access: 'granted' });
    });

    test('probe-after-rotate: the old credential is denied, the new one granted', async () => {
      const { identity, secret: old } = await t.newIdentity();
      expect(await c.probe(identity, old)).toEqual({ access: 'granted' });
      const fresh = await rotateCredential(t, identity, old);
      expect(await c.probe(identity, old)).toMatchObject({ access: 'denied', code: t.codes.wrongCredential });
      expect(await c.probe(identity, fresh)).toEqual({ access: 'granted' });
      // Setting the same value (or retiring the old one) again is harmless.
      if (c.capabilities.credentials === 'set') await c.setCredential(identity, fresh);
      else expect(await c.retireCredential!(identity, old)).toEqual({ removed: false });
      expect(await c.probe(identity, fresh)).toEqual({ access: 'granted' });
      expect(await c.probe(identity, old)).toMatchObject({ access: 'denied', code: t.codes.wrongCredential });
    });

    test('issued credentials are listed and removed by id, idempotently, the others kept (what a retried staging needs)', async () => {
      if (c.capabilities.credentials !== 'issued') {
        expect([c.listCredentialIds, c.retireCredentialById]).toEqual([undefined, undefined]);
        return;
      }
      const { identity, secret } = await t.newIdentity();
      const before = await c.listCredentialIds!(identity);
      const issued = await c.issueCredential!(identity, {});
      expect(await c.listCredentialIds!(identity)).toEqual([...before, issued.id].sort());
      expect(await c.retireCredentialById!(identity, issued.id)).toEqual({ removed: true });
      expect(await c.retireCredentialById!(identity, issued.id)).toEqual({ removed: false });
      expect(await c.listCredentialIds!(identity)).toEqual(before);
      expect(await c.probe(identity, issued.value)).toMatchObject({ access: 'denied' });
      expect(await c.probe(identity, secret)).toEqual({ access: 'granted' });
    });

    ifLimits('probe at the connection limit: the right credential is inconclusive, a wrong one denied', async () => {
      const { identity, secret } = await t.newIdentity();
      await c.apply(identity, { entitlements: [], canLogin: true, connectionLimit: 1 });
      await open(identity, secret);
      const full = await c.probe(identity, secret);
      expect(full).toMatchObject({ access: 'inconclusive', code: t.codes.connectionLimit });
      expect(full.credentialAccepted).not.toBe(false);
      expect(await c.probe(identity, t.newSecret())).toMatchObject({ access: 'denied', code: t.codes.wrongCredential });
      await c.apply(identity, { entitlements: [], canLogin: true, connectionLimit: -1 });
      expect(await c.probe(identity, secret)).toEqual({ access: 'granted' });
    });

    test('snapshot → throttle → restore is exact and each step idempotent', async () => {
      const { identity, secret } = await t.newIdentity();
      const { readOnly, writeCapable } = t.entitlements;
      await c.grant(identity, readOnly);
      await c.grant(identity, writeCapable);
      const original = { memberships: sorted(await t.inspect.memberships(identity)), account: await t.inspect.account(identity) };
      expect(original.memberships).toEqual(sorted([readOnly, writeCapable]));

      const snap = await c.snapshot(identity);
      expect(snap).toMatchObject({ identity, exists: true, canLogin: true, connectionLimit: -1, entitlements: original.memberships });
      expect(withoutTakenAt(await c.snapshot(identity))).toEqual(withoutTakenAt(snap));
      expect(await c.readAccess(identity)).toEqual({ exists: true, canLogin: true, connectionLimit: -1, entitlements: original.memberships });

      const before = await c.throttle(identity, { connectionLimit: 1, removeWriteEntitlements: true });
      expect(withoutTakenAt(before)).toEqual(withoutTakenAt(snap));
      expect(await t.inspect.memberships(identity)).toEqual([readOnly]);
      expect(await t.inspect.account(identity)).toEqual({ canLogin: true, connectionLimit: 1 });

      // A retried throttle leaves the same target state.
      await c.throttle(identity, { connectionLimit: 1, removeWriteEntitlements: true });
      expect(await t.inspect.memberships(identity)).toEqual([readOnly]);
      expect(await t.inspect.account(identity)).toEqual({ canLogin: true, connectionLimit: 1 });

      // Level 2 refuses login altogether.
      await c.throttle(identity, { connectionLimit: 0, removeWriteEntitlements: true, disableLogin: true });
      expect(await t.inspect.account(identity)).toEqual({ canLogin: false, connectionLimit: 0 });
      expect(await c.probe(identity, secret)).toMatchObject({ access: 'inconclusive', code: t.codes.loginDisabled });

      // Something granted during the throttle is not part of the snapshot: exact restore removes it.
      await c.grant(identity, t.entitlements.hostile);

      const restored = await c.restore(snap);
      expect(restored).toEqual({ exists: true, canLogin: true, connectionLimit: -1, entitlements: original.memberships });
      expect(sorted(await t.inspect.memberships(identity))).toEqual(original.memberships);
      expect(await t.inspect.account(identity)).toEqual(original.account);
      expect(await c.probe(identity, secret)).toEqual({ access: 'granted' });

      expect(await c.restore(snap)).toEqual(restored);
      expect(sorted(await t.inspect.memberships(identity))).toEqual(original.memberships);
      expect(await t.inspect.account(identity)).toEqual(original.account);
    });

    test('restore brings back a disabled, limited state exactly too', async () => {
      const { identity } = await t.newIdentity();
      await c.setLogin(identity, false);
      await c.throttle(identity, { connectionLimit: 3, removeWriteEntitlements: false });
      const snap = await c.snapshot(identity);
      await c.setLogin(identity, true);
      await c.grant(identity, t.entitlements.writeCapable);
      await c.throttle(identity, { connectionLimit: -1, removeWriteEntitlements: false });
      await c.restore(snap);
      expect(await t.inspect.account(identity)).toEqual({ canLogin: false, connectionLimit: 3 });
      expect(await t.inspect.memberships(identity)).toEqual([]);
    });

    test('invalid throttle levels and snapshots are permanent errors', async () => {
      const { identity } = await t.newIdentity();
      await expectPermanent(c.throttle(identity, { connectionLimit: -2, removeWriteEntitlements: false }), ConnectorErrorCode.InvalidArgument);
      await expectPermanent(c.throttle(identity, { connectionLimit: 1.5, removeWriteEntitlements: false }), ConnectorErrorCode.InvalidArgument);
      await expectPermanent(
        c.restore({ identity, exists: false, canLogin: false, connectionLimit: 0, entitlements: [], takenAt: new Date().toISOString() }),
        ConnectorErrorCode.InvalidArgument,
      );
      expect(await t.inspect.account(identity)).toEqual({ canLogin: true, connectionLimit: -1 });
    });

    ifSessions('invalidateSessions ends live sessions, keeps newer ones with startedBefore, and is idempotent', async () => {
      const { identity, secret } = await t.newIdentity();
      const older = await open(identity, secret);
      const idOf = (s: { pid: number; id?: string }) => s.id ?? s.pid;
      expect((await c.listSessions(identity)).map(idOf)).toEqual([older.id]);
      await sleep(100);
      const cutoff = new Date();
      await sleep(100);
      const newer = await open(identity, secret);
      const listed = await c.listSessions(identity);
      expect(listed.map(idOf)).toEqual([older.id, newer.id]);
      expect(new Date(listed[0].backendStart).getTime()).toBeLessThan(cutoff.getTime());
      expect(new Date(listed[1].backendStart).getTime()).toBeGreaterThan(cutoff.getTime());

      expect(await c.invalidateSessions(identity, cutoff)).toEqual({ terminated: 1 });
      expect(await t.inspect.sessionAlive(older.id)).toBe(false);
      expect(await t.inspect.sessionAlive(newer.id)).toBe(true);
      expect(await c.invalidateSessions(identity, cutoff)).toEqual({ terminated: 0 });
      expect(await t.inspect.sessionAlive(newer.id)).toBe(true);

      expect(await c.invalidateSessions(identity)).toEqual({ terminated: 1 });
      expect(await t.inspect.sessionAlive(newer.id)).toBe(false);
      expect(await c.listSessions(identity)).toEqual([]);
      expect(await c.invalidateSessions(identity)).toEqual({ terminated: 0 });
    });

    test('apply makes access exactly what it is told, changes only the differences, is idempotent, and reads back', async () => {
      const { identity, secret } = await t.newIdentity();
      const { readOnly, writeCapable } = t.entitlements;
      const wanted = { entitlements: sorted([readOnly, writeCapable]), canLogin: true, connectionLimit: 3 };
      expect(await c.apply(identity, wanted)).toMatchObject({ exists: true, ...wanted });
      expect(await t.inspect.memberships(identity)).toEqual(wanted.entitlements);
      expect(await t.inspect.account(identity)).toEqual({ canLogin: true, connectionLimit: 3 });
      expect(await c.apply(identity, wanted)).toMatchObject(wanted);

      const next = { entitlements: [readOnly], canLogin: false, connectionLimit: -1 };
      expect(await c.apply(identity, next)).toMatchObject(next);
      expect(await t.inspect.memberships(identity)).toEqual([readOnly]);
      expect(await t.inspect.account(identity)).toEqual({ canLogin: false, connectionLimit: -1 });
      expect((await c.probe(identity, secret)).access).not.toBe('granted');

      await expectPermanent(c.apply(identity, { ...next, entitlements: [t.entitlements.notGrantable] }), ConnectorErrorCode.EntitlementNotGrantable);
      await expectPermanent(c.apply(identity, { ...next, connectionLimit: -2 }), ConnectorErrorCode.InvalidArgument);
      expect(await t.inspect.memberships(identity)).toEqual([readOnly]);
    });

    test('entitlementCatalogue: grantable as listed; write-capable and read-only forms among them', async () => {
      const cat = c.entitlementCatalogue();
      expect(cat.grantable).toEqual(await c.listGrantableEntitlements());
      expect(cat.writeCapable).toContain(t.entitlements.writeCapable);
      expect(cat.writeCapable).not.toContain(t.entitlements.readOnly);
      for (const e of cat.writeCapable) expect(cat.grantable).toContain(e);
      for (const [w, r] of Object.entries(cat.readOnlyForm)) {
        expect(cat.writeCapable).toContain(w);
        expect(cat.grantable).toContain(r);
        expect(cat.writeCapable).not.toContain(r);
      }
    });

    test('listIdentities discovers managed identities, not entitlements', async () => {
      const a = await t.newIdentity();
      const b = await t.newIdentity();
      await c.grant(a.identity, t.entitlements.readOnly);
      await c.setLogin(b.identity, false);
      const found = await c.listIdentities();
      const brief = (identity: string) => {
        const d = found.find((x) => x.identity === identity);
        return d && { identity: d.identity, canLogin: d.canLogin, entitlements: d.entitlements };
      };
      expect(brief(a.identity)).toEqual({ identity: a.identity, canLogin: true, entitlements: [t.entitlements.readOnly] });
      // A disabled identity is still discovered (offboarded identities must stay visible).
      expect(brief(b.identity)).toEqual({ identity: b.identity, canLogin: false, entitlements: [] });
      const names = found.map((d) => d.identity);
      for (const ent of await c.listGrantableEntitlements()) expect(names).not.toContain(ent);
    });

    // Optional (issue 13): what registration asks before an NHI enters the inventory.
    test('checkRegistrable, where offered: a managed identity yes; an entitlement or a missing identity no, with a reason', async () => {
      if (!c.checkRegistrable) return;
      expect(await c.checkRegistrable((await t.newIdentity()).identity)).toEqual({ ok: true });
      for (const name of [t.entitlements.readOnly, t.entitlements.writeCapable, `missing_${Date.now()}`]) {
        expect(await c.checkRegistrable(name)).toEqual({ ok: false, reason: expect.any(String) });
      }
    });
  });
}
