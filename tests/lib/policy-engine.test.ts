import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PolicyEngine, PolicyLoadError, type DecisionRequest } from '../../lib/policy-engine';
import { projectRoot } from '../../lib/paths';

const POLICIES = path.join(projectRoot, 'policies');

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the real policy folder to break on purpose. */
function copyOfPolicies(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-policies-'));
  temps.push(dir);
  for (const f of readdirSync(POLICIES)) copyFileSync(path.join(POLICIES, f), path.join(dir, f));
  return dir;
}

function loadError(dir: string): PolicyLoadError {
  try {
    PolicyEngine.load(dir);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyLoadError);
    return err as PolicyLoadError;
  }
  throw new Error(`expected ${dir} to fail to load`);
}

const principal = (id: string) => ({ type: 'Nhi::Principal', id });
const action = (id: string) => ({ type: 'Nhi::Action', id });
const ref = (type: string, id: string) => ({ __entity: { type, id } });

function offboard(principalId: string, roles: string[], nhi: { kind: string; owner: string; criticality: string }): DecisionRequest {
  return {
    principal: principal(principalId),
    action: action('Offboard'),
    resource: { type: 'Nhi::Nhi', id: 'partner_acme' },
    entities: [
      { uid: principal(principalId), attrs: { roles }, parents: [] },
      {
        uid: { type: 'Nhi::Nhi', id: 'partner_acme' },
        attrs: { kind: nhi.kind, owner: ref('Nhi::Principal', nhi.owner), criticality: nhi.criticality, tags: [] },
        parents: [],
      },
    ],
  };
}

describe('PolicyEngine.load on the shipped policies', () => {
  const engine = PolicyEngine.load(POLICIES, { validateRequests: true });

  it('loads, validates without warnings, and names policies by their @id', () => {
    expect(engine.warnings).toEqual([]);
    expect(engine.policySetHash).toMatch(/^[0-9a-f]{64}$/);
    const ids = engine.policies.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(['jit-no-self-approval', 'offboard-who', 'throttle', 'contain']));
    const p = engine.policy('jit-max-duration-admin')!;
    expect(p).toMatchObject({ file: 'jit.cedar', effect: 'forbid', actions: expect.arrayContaining(['Nhi::Action::"RequestElevation"']) });
    expect(p.line).toBeGreaterThan(1);
    expect(engine.annotations('jit-max-duration-admin')).toMatchObject({ maxMinutes: '240', reason: expect.stringContaining('4 hours') });
    expect(engine.annotations('no-such-policy')).toEqual({});
  });

  it('allows, naming the permits that determined it', () => {
    const d = engine.decide(offboard('root', ['admin'], { kind: 'integration', owner: 'acme-team', criticality: 'medium' }));
    expect(d).toEqual({ decision: 'allow', determiningPolicies: ['offboard-defaults'], errors: [], policySetHash: engine.policySetHash });
  });

  it('denies, naming the forbids that determined it', () => {
    const d = engine.decide(offboard('mallory', ['requester'], { kind: 'integration', owner: 'acme-team', criticality: 'critical' }));
    expect(d.decision).toBe('deny');
    expect(d.determiningPolicies).toEqual(['offboard-who', 'offboard-critical-admin-only']);
    expect(d.errors).toEqual([]);
  });

  it('denies by default, with no determining policy, when nothing permits', () => {
    const d = engine.decide({
      principal: principal('alice'),
      action: action('RequestElevation'),
      resource: { type: 'Nhi::Entitlement', id: 'superuser' },
      context: { nhi: ref('Nhi::Nhi', 'svc'), durationMinutes: 30, totalMinutes: 30, hasTicket: true, breakGlass: false },
      entities: [
        { uid: principal('alice'), attrs: { roles: ['requester'] }, parents: [] },
        { uid: { type: 'Nhi::Nhi', id: 'svc' }, attrs: { kind: 'service_account', owner: ref('Nhi::Principal', 'x'), criticality: 'low', tags: [] }, parents: [] },
      ],
    });
    expect(d).toMatchObject({ decision: 'deny', determiningPolicies: [], errors: [] });
  });

  it('fails closed: a malformed request is denied with the validator error', () => {
    const req = offboard('root', ['admin'], { kind: 'integration', owner: 'acme-team', criticality: 'medium' });
    (req.entities![1].attrs as Record<string, unknown>).criticality = 3;
    const d = engine.decide(req);
    expect(d.decision).toBe('deny');
    expect(d.errors.join()).toMatch(/criticality/);
  });

  it('fails closed without request validation too: a forbid that cannot be evaluated denies', () => {
    const fast = PolicyEngine.load(POLICIES);
    const req = offboard('mallory', ['requester'], { kind: 'integration', owner: 'acme-team', criticality: 'medium' });
    req.entities = [req.entities![0]]; // the NHI's facts are missing
    const d = fast.decide(req);
    expect(d.decision).toBe('deny');
    expect(d.errors.length).toBeGreaterThan(0);
    expect(d.determiningPolicies.length).toBeGreaterThan(0);
  });

  it('gives the same answers with and without per-request validation', () => {
    const fast = PolicyEngine.load(POLICIES);
    for (const req of [
      offboard('root', ['admin'], { kind: 'service_account', owner: 'x', criticality: 'critical' }),
      offboard('acme-team', ['requester'], { kind: 'integration', owner: 'acme-team', criticality: 'low' }),
      offboard('acme-team', ['requester'], { kind: 'service_account', owner: 'acme-team', criticality: 'low' }),
    ]) {
      expect(fast.decide(req)).toEqual(engine.decide(req));
    }
  });

  it('decides from the pre-parsed set, well under a millisecond', () => {
    const fast = PolicyEngine.load(POLICIES);
    const req = offboard('root', ['admin'], { kind: 'integration', owner: 'acme-team', criticality: 'medium' });
    for (let i = 0; i < 200; i++) fast.decide(req);
    const n = 2000;
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fast.decide(req);
    const micros = Number(process.hrtime.bigint() - t) / 1000 / n;
    // Typically 40–150 µs on a small shared VM; a generous bound that still catches a regression
    // to re-parsing the policy set per decision (milliseconds).
    expect(micros).toBeLessThan(1000);
  });
});

describe('PolicyEngine.load failures', () => {
  it('rejects a policy that does not validate, naming the file, line, policy and the validator error', () => {
    const dir = copyOfPolicies();
    writeFileSync(
      path.join(dir, 'bad.cedar'),
      '// a typo in an attribute name\n\n@id("bad-attr")\n@reason("x")\nforbid (principal, action == Nhi::Action::"Offboard", resource)\nwhen { resource.critcality == "critical" };\n',
    );
    const err = loadError(dir);
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatchObject({ file: 'bad.cedar', policyId: 'bad-attr', line: 6 });
    expect(err.message).toContain(dir);
    expect(err.message).toMatch(/bad\.cedar:6:\d+ \(policy bad-attr\): .*critcality.*not found.*did you mean `criticality`/);
  });

  it('rejects an unknown action or entity type', () => {
    const dir = copyOfPolicies();
    writeFileSync(path.join(dir, 'bad.cedar'), 'permit (principal, action == Nhi::Action::"Delete", resource);\n');
    const err = loadError(dir);
    expect(err.problems[0]).toMatchObject({ file: 'bad.cedar', policyId: 'bad.cedar#0', line: 1 });
    expect(err.message).toMatch(/Delete/);
  });

  it('rejects a syntax error with its position in the file', () => {
    const dir = copyOfPolicies();
    writeFileSync(path.join(dir, 'bad.cedar'), '@id("ok")\npermit (principal, action, resource);\n\nforbid (principal, action, resource) when { x };\n');
    const err = loadError(dir);
    expect(err.problems[0]).toMatchObject({ file: 'bad.cedar', line: 4 });
    expect(err.message).toMatch(/invalid variable: x/);
  });

  it('rejects duplicate policy ids across files', () => {
    const dir = copyOfPolicies();
    writeFileSync(path.join(dir, 'zz-dup.cedar'), '@id("contain")\n@reason("again")\nforbid (principal, action == Nhi::Action::"Contain", resource);\n');
    const err = loadError(dir);
    expect(err.message).toMatch(/zz-dup\.cedar:1:1 \(policy contain\): duplicate policy id \(also leak\.cedar:\d+\)/);
  });

  it('rejects templates', () => {
    const dir = copyOfPolicies();
    writeFileSync(path.join(dir, 'tpl.cedar'), 'permit (principal == ?principal, action, resource);\n');
    expect(loadError(dir).message).toMatch(/tpl\.cedar:1:1: templates .* are not supported/);
  });

  it('rejects an invalid schema, naming the schema file and position', () => {
    const dir = copyOfPolicies();
    writeFileSync(path.join(dir, 'schema.cedarschema'), 'namespace Nhi {\n  entity Principal { roles: Set<Strin> };\n}\n');
    const err = loadError(dir);
    expect(err.problems[0]).toMatchObject({ file: 'schema.cedarschema', line: 2 });
    expect(err.message).toMatch(/Strin/);
  });

  it('rejects a schema that does not parse', () => {
    const dir = copyOfPolicies();
    writeFileSync(path.join(dir, 'schema.cedarschema'), 'namespace Nhi {\n  entity Principal { roles: Set<String> \n');
    expect(loadError(dir).message).toMatch(/schema\.cedarschema:\d+:\d+: .*parse/);
  });

  it('rejects a folder without a schema or without policies', () => {
    const noSchema = copyOfPolicies();
    rmSync(path.join(noSchema, 'schema.cedarschema'));
    expect(loadError(noSchema).message).toMatch(/schema\.cedarschema: missing/);

    const noPolicies = mkdtempSync(path.join(os.tmpdir(), 'nhi-policies-'));
    temps.push(noPolicies);
    copyFileSync(path.join(POLICIES, 'schema.cedarschema'), path.join(noPolicies, 'schema.cedarschema'));
    expect(loadError(noPolicies).message).toMatch(/no \*\.cedar policy files/);

    expect(loadError(path.join(noPolicies, 'nope')).message).toMatch(/cannot read the policy folder/);
  });
});

describe('policySetHash', () => {
  it('is stable for the same files and changes when a policy changes', () => {
    const dir = copyOfPolicies();
    const before = PolicyEngine.load(dir).policySetHash;
    expect(PolicyEngine.load(dir).policySetHash).toBe(before);
    expect(PolicyEngine.load(POLICIES).policySetHash).toBe(before);

    writeFileSync(
      path.join(dir, 'extra.cedar'),
      '@id("extra")\n@reason("no offboarding of tagged NHIs")\nforbid (principal, action == Nhi::Action::"Offboard", resource) when { resource.tags.contains("keep") };\n',
    );
    const changed = PolicyEngine.load(dir);
    expect(changed.policySetHash).not.toBe(before);
    // Both engines stay usable side by side: their pre-parsed sets are keyed by hash.
    const req = offboard('root', ['admin'], { kind: 'integration', owner: 'x', criticality: 'low' });
    req.entities![1].attrs.tags = ['keep'];
    expect(changed.decide(req)).toMatchObject({ decision: 'deny', determiningPolicies: ['extra'], policySetHash: changed.policySetHash });
    expect(PolicyEngine.load(POLICIES).decide(req)).toMatchObject({ decision: 'allow', policySetHash: before });
  });
});
