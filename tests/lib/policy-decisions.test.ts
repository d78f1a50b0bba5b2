import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../lib/paths';
import { checkPolicyConventions, loadNhiPolicies, type NhiFacts, type Principal } from '../../lib/policy-decisions';
import { canConfirmThrottle, decideThrottle } from '../../scenarios/anomaly/policy';
import { canApprove, decideElevation, SELF_APPROVAL_REASON, type ElevationInput } from '../../scenarios/jit/policy';
import { decideContainment } from '../../scenarios/leak/policy';
import { decideOffboard, graceTooShort } from '../../scenarios/offboarding/policy';
import { PolicyLoadError } from '../../lib/policy-engine';

const POLICIES = path.join(projectRoot, 'policies');
// Request validation on: proves the helpers build requests that match the schema.
const engine = loadNhiPolicies(POLICIES, { validateRequests: true });

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));
function copyOfPolicies(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-policies-'));
  temps.push(dir);
  for (const f of readdirSync(POLICIES)) copyFileSync(path.join(POLICIES, f), path.join(dir, f));
  return dir;
}

const alice: Principal = { id: 'alice', roles: ['requester'] };
const bob: Principal = { id: 'bob', roles: ['approver'] };
const carol: Principal = { id: 'carol', roles: ['approver'] };
const root: Principal = { id: 'root', roles: ['admin'] };
const deployBot: Principal = { id: 'deploy-bot', roles: ['deployer'] };
const detectorBot: Principal = { id: 'detector-bot', roles: ['detector'] };

const svc: NhiFacts = { id: 'svc_payments', kind: 'service_account', owner: 'team-payments', criticality: 'high', tags: [], status: 'active' };
const criticalSvc: NhiFacts = { ...svc, id: 'svc_ledger', criticality: 'critical' };
const lowSvc: NhiFacts = { ...svc, id: 'svc_reports', criticality: 'low' };
const partner: NhiFacts = { id: 'partner_acme', kind: 'integration', owner: 'acme-owner', criticality: 'medium', tags: [], status: 'active' };
const agent: NhiFacts = { id: 'agent_reports', kind: 'ai_agent', owner: 'data-team', criticality: 'low', tags: [] };
const apiKey: NhiFacts = { id: 'key_billing', kind: 'api_key', owner: 'billing', criticality: 'medium', tags: [] };

const request = (over: Partial<ElevationInput>): ElevationInput => ({
  requester: alice,
  nhi: svc,
  entitlements: ['estate_readonly'],
  durationMinutes: 60,
  ...over,
});

describe('conventions', () => {
  it('the shipped policies follow them', () => {
    expect(checkPolicyConventions(engine)).toEqual([]);
  });

  it('each @maxMinutes states the limit its condition enforces', () => {
    const limits = engine.policies.filter((p) => p.annotations.maxMinutes !== undefined);
    expect(limits.map((p) => p.id).sort()).toEqual(['jit-break-glass-max-duration', 'jit-max-duration', 'jit-max-duration-admin']);
    for (const p of limits) expect(p.text).toContain(`context.totalMinutes > ${p.annotations.maxMinutes}`);
  });

  it('loadNhiPolicies refuses a forbid without @reason, a policy without @id, a permit missing its numbers', () => {
    const dir = copyOfPolicies();
    writeFileSync(
      path.join(dir, 'extra.cedar'),
      [
        '@id("silent")\nforbid (principal, action == Nhi::Action::"Contain", resource) when { resource.tags.contains("x") };',
        'permit (principal, action == Nhi::Action::"Contain", resource);',
        '@id("no-approvals")\npermit (principal, action == Nhi::Action::"RequestElevation", resource == Nhi::Entitlement::"estate_audit");',
        '@id("no-grace")\n@watchDays("3")\npermit (principal, action == Nhi::Action::"Offboard", resource);',
        '@id("bad-number")\n@approvals("two")\npermit (principal, action == Nhi::Action::"RequestElevation", resource == Nhi::Entitlement::"x");',
      ].join('\n\n') + '\n',
    );
    let err: unknown;
    try {
      loadNhiPolicies(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyLoadError);
    const message = (err as Error).message;
    expect(message).toMatch(/extra\.cedar:1:1 \(policy silent\): a forbid needs a @reason/);
    expect(message).toMatch(/extra\.cedar:\d+:1 \(policy extra\.cedar#1\): needs an @id/);
    expect(message).toMatch(/\(policy no-approvals\): a permit for RequestElevation needs @approvals/);
    expect(message).toMatch(/\(policy no-grace\): a permit for Offboard needs @graceDays/);
    expect(message).toMatch(/\(policy bad-number\): @approvals\("two"\) must be a whole number ≥ 1/);
  });
});

describe('decideElevation', () => {
  it('auto-approves estate_readonly on a non-critical NHI', () => {
    const d = decideElevation(engine, request({ nhi: lowSvc }));
    expect(d).toMatchObject({
      outcome: 'auto_approve',
      requiredApprovals: 0,
      reasons: ['estate_readonly on a non-critical NHI is approved automatically'],
      maxDurationMinutes: 480,
      policySetHash: engine.policySetHash,
    });
    expect(d.determiningPolicies).toEqual(['jit-readonly', 'jit-auto-readonly']);
  });

  it('needs one approver for estate_writer, and for estate_readonly on a critical NHI', () => {
    expect(decideElevation(engine, request({ entitlements: ['estate_writer'] }))).toMatchObject({
      outcome: 'needs_approval',
      requiredApprovals: 1,
      reasons: ['estate_writer needs one approver'],
      determiningPolicies: ['jit-writer'],
    });
    expect(decideElevation(engine, request({ nhi: criticalSvc, ticket: 'CHG-1' }))).toMatchObject({
      outcome: 'needs_approval',
      requiredApprovals: 1,
    });
  });

  it('needs one approver for estate_admin, two on a critical NHI', () => {
    expect(decideElevation(engine, request({ entitlements: ['estate_admin'], ticket: 'CHG-1' }))).toMatchObject({
      outcome: 'needs_approval',
      requiredApprovals: 1,
      maxDurationMinutes: 240,
      determiningPolicies: ['jit-admin'],
    });
    expect(decideElevation(engine, request({ nhi: criticalSvc, entitlements: ['estate_admin'], ticket: 'CHG-1' }))).toMatchObject({
      outcome: 'needs_approval',
      requiredApprovals: 2,
      reasons: ['estate_admin on a critical NHI needs two distinct approvers'],
      determiningPolicies: ['jit-admin-critical'],
    });
  });

  it('takes the largest need of a bundle, and the shortest maximum', () => {
    const d = decideElevation(engine, request({ nhi: criticalSvc, entitlements: ['estate_readonly', 'estate_admin'], ticket: 'CHG-1' }));
    expect(d).toMatchObject({ outcome: 'needs_approval', requiredApprovals: 2, maxDurationMinutes: 240 });
    expect(d.entitlements.map((v) => [v.entitlement, v.requiredApprovals, v.maxDurationMinutes])).toEqual([
      ['estate_readonly', 1, 480],
      ['estate_admin', 2, 240],
    ]);
    // Partly auto-approvable is not auto-approved.
    expect(decideElevation(engine, request({ nhi: lowSvc, entitlements: ['estate_readonly', 'estate_writer'] }))).toMatchObject({
      outcome: 'needs_approval',
      requiredApprovals: 1,
    });
  });

  it('is all-or-nothing: one entitlement denied denies the bundle, with its reason', () => {
    const d = decideElevation(engine, request({ nhi: agent, entitlements: ['estate_readonly', 'estate_admin'], ticket: 'CHG-1' }));
    expect(d.outcome).toBe('deny');
    expect(d.reasons).toEqual(['estate_admin is granted only to service accounts, never to API keys, tokens, integrations or AI agents']);
    expect(d.determiningPolicies).toContain('jit-admin-service-accounts-only');
    expect(d.entitlements.map((v) => v.allowed)).toEqual([true, false]);
  });

  it('limits entitlements by NHI kind', () => {
    expect(decideElevation(engine, request({ nhi: apiKey, entitlements: ['estate_writer'] }))).toMatchObject({
      outcome: 'deny',
      reasons: ['estate_writer is granted only to service accounts and integrations'],
      determiningPolicies: ['jit-writer-kinds'],
    });
    expect(decideElevation(engine, request({ nhi: partner, entitlements: ['estate_writer'] })).outcome).toBe('needs_approval');
  });

  it('denies an entitlement no policy makes requestable, without a determining policy', () => {
    expect(decideElevation(engine, request({ entitlements: ['superuser'] }))).toMatchObject({
      outcome: 'deny',
      reasons: ['no policy lets superuser be granted to service_account svc_payments'],
      determiningPolicies: [],
    });
  });

  it('requires the requester or admin role', () => {
    expect(decideElevation(engine, request({ requester: deployBot, nhi: lowSvc }))).toMatchObject({
      outcome: 'deny',
      reasons: ['only principals with the requester or admin role may request or extend an elevation'],
      determiningPolicies: ['jit-requester-role'],
    });
    expect(decideElevation(engine, request({ requester: root, nhi: lowSvc })).outcome).toBe('auto_approve');
  });

  it('requires a ticket for estate_admin and for critical NHIs', () => {
    const reason = 'a ticket is required for estate_admin and for any elevation of a critical NHI';
    expect(decideElevation(engine, request({ entitlements: ['estate_admin'] }))).toMatchObject({ outcome: 'deny', reasons: [reason] });
    expect(decideElevation(engine, request({ entitlements: ['estate_admin'], ticket: '   ' }))).toMatchObject({ outcome: 'deny', reasons: [reason] });
    expect(decideElevation(engine, request({ nhi: criticalSvc }))).toMatchObject({
      outcome: 'deny',
      reasons: [reason],
      determiningPolicies: ['jit-ticket-required'],
    });
    expect(decideElevation(engine, request({ entitlements: ['estate_writer'] })).outcome).toBe('needs_approval');
  });

  it('refuses NHIs that are not active', () => {
    expect(decideElevation(engine, request({ nhi: { ...lowSvc, status: 'throttled' } }))).toMatchObject({
      outcome: 'deny',
      determiningPolicies: ['jit-nhi-not-active'],
      reasons: [expect.stringContaining('not active')],
    });
  });

  it('enforces the maximum duration per entitlement, with the reason and the maximum', () => {
    const admin = request({ entitlements: ['estate_admin'], ticket: 'CHG-1' });
    expect(decideElevation(engine, { ...admin, durationMinutes: 240 }).outcome).toBe('needs_approval');
    expect(decideElevation(engine, { ...admin, durationMinutes: 241 })).toMatchObject({
      outcome: 'deny',
      reasons: ['estate_admin can be held for at most 4 hours in one window, extensions included'],
      maxDurationMinutes: 240,
      determiningPolicies: ['jit-max-duration-admin'],
    });
    expect(decideElevation(engine, request({ nhi: lowSvc, durationMinutes: 480 })).outcome).toBe('auto_approve');
    expect(decideElevation(engine, request({ nhi: lowSvc, durationMinutes: 481 }))).toMatchObject({
      outcome: 'deny',
      reasons: ['an elevation can last at most 8 hours in one window, extensions included'],
      maxDurationMinutes: 480,
    });
    expect(decideElevation(engine, request({ durationMinutes: 0 }))).toMatchObject({
      outcome: 'deny',
      reasons: ['the duration must be at least one minute'],
    });
  });

  it('refuses malformed input without asking policy', () => {
    expect(decideElevation(engine, request({ entitlements: [] }))).toMatchObject({ outcome: 'deny', reasons: ['no entitlement requested'] });
    expect(decideElevation(engine, request({ durationMinutes: 1.5 })).reasons).toEqual(['the duration must be a whole number of minutes']);
    expect(decideElevation(engine, request({ durationMinutes: 30, extension: { totalMinutes: 20 } })).outcome).toBe('deny');
  });

  describe('extension', () => {
    const admin = request({ nhi: criticalSvc, entitlements: ['estate_admin'], ticket: 'CHG-1', durationMinutes: 60 });

    it('within the maximum is allowed without new approvals', () => {
      expect(decideElevation(engine, { ...admin, extension: { totalMinutes: 240 } })).toMatchObject({
        outcome: 'auto_approve',
        requiredApprovals: 0,
        reasons: [],
        maxDurationMinutes: 240,
      });
    });

    it('beyond the maximum is denied with the reason', () => {
      expect(decideElevation(engine, { ...admin, extension: { totalMinutes: 300 } })).toMatchObject({
        outcome: 'deny',
        reasons: ['estate_admin can be held for at most 4 hours in one window, extensions included'],
        maxDurationMinutes: 240,
        determiningPolicies: ['jit-max-duration-admin'],
      });
    });

    it('of a break-glass elevation is denied', () => {
      const bg = request({ nhi: { ...svc, tags: ['break-glass'] }, ticket: 'INC-1', breakGlass: true, durationMinutes: 30 });
      expect(decideElevation(engine, { ...bg, extension: { totalMinutes: 60 } })).toMatchObject({
        outcome: 'deny',
        reasons: ['a break-glass elevation cannot be extended: request a normal elevation'],
      });
    });

    it('still needs the requester role', () => {
      expect(decideElevation(engine, { ...admin, requester: bob, extension: { totalMinutes: 120 } }).outcome).toBe('deny');
    });
  });

  describe('break-glass', () => {
    const eligible: NhiFacts = { ...criticalSvc, tags: ['break-glass'] };

    it('is granted at once for an opted-in NHI with a ticket', () => {
      const d = decideElevation(engine, request({ nhi: eligible, entitlements: ['estate_admin'], ticket: 'INC-7', breakGlass: true }));
      expect(d).toMatchObject({
        outcome: 'break_glass',
        requiredApprovals: 0,
        reasons: ['break-glass: granted at once, approvers notified, grant marked for review'],
        maxDurationMinutes: 120,
      });
      expect(d.determiningPolicies).toEqual(['jit-admin-critical', 'jit-break-glass']);
    });

    it('is refused for an NHI that did not opt in', () => {
      expect(decideElevation(engine, request({ nhi: criticalSvc, entitlements: ['estate_admin'], ticket: 'INC-7', breakGlass: true }))).toMatchObject({
        outcome: 'deny',
        reasons: ['break-glass is available only for NHIs tagged break-glass by their owner'],
        determiningPolicies: ['jit-admin-critical', 'jit-break-glass-opt-in'],
      });
    });

    it('is refused without a ticket, and beyond two hours', () => {
      expect(decideElevation(engine, request({ nhi: { ...lowSvc, tags: ['break-glass'] }, breakGlass: true }))).toMatchObject({
        outcome: 'deny',
        reasons: ['break-glass needs an incident ticket'],
      });
      expect(decideElevation(engine, request({ nhi: eligible, ticket: 'INC-7', breakGlass: true, durationMinutes: 121 }))).toMatchObject({
        outcome: 'deny',
        reasons: ['a break-glass window lasts at most 2 hours'],
        maxDurationMinutes: 120,
      });
    });

    it('does not bypass the request rules', () => {
      expect(decideElevation(engine, request({ nhi: { ...agent, tags: ['break-glass'] }, entitlements: ['estate_admin'], ticket: 'INC-7', breakGlass: true }))).toMatchObject({
        outcome: 'deny',
        determiningPolicies: ['jit-admin-service-accounts-only'],
      });
    });
  });
});

describe('canApprove', () => {
  const base = { requester: alice, nhi: criticalSvc, entitlements: ['estate_admin', 'estate_readonly'] };

  it('lets approvers and admins approve someone else’s request', () => {
    expect(canApprove(engine, { ...base, approver: bob })).toEqual({
      allowed: true,
      reasons: [],
      determiningPolicies: ['jit-approve'],
      policySetHash: engine.policySetHash,
    });
    expect(canApprove(engine, { ...base, approver: root }).allowed).toBe(true);
  });

  it('never lets the requester approve their own request', () => {
    const selfApprover: Principal = { id: 'bob', roles: ['requester', 'approver'] };
    expect(canApprove(engine, { ...base, requester: selfApprover, approver: selfApprover })).toMatchObject({
      allowed: false,
      reasons: [SELF_APPROVAL_REASON],
      determiningPolicies: ['jit-no-self-approval'],
    });
  });

  it('refuses self-approval even if the policy forbidding it were removed', () => {
    const dir = copyOfPolicies();
    const jit = path.join(dir, 'jit.cedar');
    const text = readFileSync(jit, 'utf8').replace(/@id\("jit-no-self-approval"\)[\s\S]*?\};\n/, '');
    expect(text).not.toContain('jit-no-self-approval');
    writeFileSync(jit, text);
    const lax = loadNhiPolicies(dir);
    const d = canApprove(lax, { ...base, requester: carol, approver: carol });
    expect(d).toMatchObject({ allowed: false, reasons: [SELF_APPROVAL_REASON], determiningPolicies: ['jit-approve'] });
  });

  it('refuses principals without the approver or admin role', () => {
    expect(canApprove(engine, { ...base, approver: deployBot })).toMatchObject({
      allowed: false,
      reasons: ['only principals with the approver or admin role may approve or deny an elevation'],
      determiningPolicies: ['jit-approver-role'],
    });
  });
});

describe('decideOffboard', () => {
  it('lets an admin offboard any NHI, with the default grace and watch periods', () => {
    expect(decideOffboard(engine, { principal: root, nhi: partner })).toMatchObject({
      allowed: true,
      defaultGraceDays: 7,
      defaultWatchDays: 30,
      determiningPolicies: ['offboard-defaults'],
      policySetHash: engine.policySetHash,
    });
    expect(decideOffboard(engine, { principal: root, nhi: criticalSvc })).toMatchObject({
      allowed: true,
      defaultGraceDays: 14,
      defaultWatchDays: 90,
      determiningPolicies: ['offboard-defaults', 'offboard-critical-defaults', 'offboard-important-safeguards'],
    });
  });

  it('keeps a minimum grace period and a second person for high and critical NHIs only (finding: one admin call finalised a critical NHI in 0.7 s)', () => {
    expect(decideOffboard(engine, { principal: root, nhi: criticalSvc })).toMatchObject({ minGraceDays: 1, secondPersonRequired: true });
    expect(decideOffboard(engine, { principal: root, nhi: { ...svc, criticality: 'high' } })).toMatchObject({ minGraceDays: 1, secondPersonRequired: true, defaultGraceDays: 7 });
    expect(decideOffboard(engine, { principal: root, nhi: partner })).toMatchObject({ minGraceDays: 0, secondPersonRequired: false });
    const critical = decideOffboard(engine, { principal: root, nhi: criticalSvc });
    expect(graceTooShort(critical, criticalSvc.id, 0)).toMatch(/at least 1 day/);
    expect(graceTooShort(critical, criticalSvc.id, 1)).toBeUndefined();
    expect(graceTooShort(critical, criticalSvc.id, undefined)).toBeUndefined();
  });

  it('lets the owner offboard their integration, and nothing else', () => {
    const owner: Principal = { id: 'acme-owner', roles: ['requester'] };
    expect(decideOffboard(engine, { principal: owner, nhi: partner })).toMatchObject({ allowed: true, defaultGraceDays: 7 });
    expect(decideOffboard(engine, { principal: owner, nhi: { ...svc, owner: 'acme-owner' } })).toMatchObject({
      allowed: false,
      defaultGraceDays: null,
      defaultWatchDays: null,
      reasons: ['only an admin, or the owner of an integration, may offboard an NHI'],
      determiningPolicies: ['offboard-who'],
    });
    expect(decideOffboard(engine, { principal: owner, nhi: { ...partner, criticality: 'critical' } })).toMatchObject({
      allowed: false,
      reasons: ['only an admin may offboard a critical NHI'],
      determiningPolicies: ['offboard-critical-admin-only'],
    });
  });

  it('refuses a stranger', () => {
    expect(decideOffboard(engine, { principal: alice, nhi: partner })).toMatchObject({
      allowed: false,
      reasons: ['only an admin, or the owner of an integration, may offboard an NHI'],
    });
  });
});

describe('decideThrottle', () => {
  it('throttles automatically and restores after a quiet period', () => {
    expect(decideThrottle(engine, { nhi: agent })).toMatchObject({
      automatic: true,
      needsConfirmation: false,
      reasons: ['usage beyond the baseline is throttled automatically'],
      autoRestoreAfterMinutes: 60,
      determiningPolicies: ['throttle', 'auto-restore'],
      policySetHash: engine.policySetHash,
    });
  });

  it('needs a person for a critical NHI, and never restores it by itself', () => {
    expect(decideThrottle(engine, { nhi: criticalSvc })).toMatchObject({
      automatic: false,
      needsConfirmation: true,
      reasons: ['a critical NHI is throttled only after a person confirms'],
      autoRestoreAfterMinutes: null,
      autoRestoreReasons: ['high and critical NHIs are restored only when an analyst clears the anomaly'],
      determiningPolicies: ['throttle-critical-needs-person', 'auto-restore-important'],
    });
  });

  it('needs a person for an NHI tagged no-auto-throttle; no-auto-restore turns the restore off', () => {
    expect(decideThrottle(engine, { nhi: { ...agent, tags: ['no-auto-throttle'] } })).toMatchObject({
      automatic: false,
      reasons: ['the NHI is tagged no-auto-throttle: it is throttled only after a person confirms'],
      autoRestoreAfterMinutes: 60,
    });
    expect(decideThrottle(engine, { nhi: { ...agent, tags: ['no-auto-restore'] } })).toMatchObject({
      automatic: true,
      autoRestoreAfterMinutes: null,
    });
    expect(decideThrottle(engine, { nhi: svc })).toMatchObject({ automatic: true, autoRestoreAfterMinutes: null });
  });

  it('lets approvers and admins confirm a throttle, not detectors', () => {
    expect(canConfirmThrottle(engine, { principal: bob, nhi: criticalSvc }).allowed).toBe(true);
    expect(canConfirmThrottle(engine, { principal: root, nhi: { ...agent, tags: ['no-auto-throttle'] } }).allowed).toBe(true);
    expect(canConfirmThrottle(engine, { principal: detectorBot, nhi: criticalSvc })).toMatchObject({
      allowed: false,
      determiningPolicies: ['throttle-who', 'throttle-critical-needs-person'],
    });
  });
});

describe('decideContainment', () => {
  it('lets detectors, admins and the orchestrator contain any NHI', () => {
    expect(decideContainment(engine, { principal: detectorBot, nhi: criticalSvc })).toMatchObject({ allowed: true, determiningPolicies: ['contain', 'contain-cooldown'] });
    expect(decideContainment(engine, { principal: root, nhi: { ...agent, tags: ['no-auto-throttle'] } }).allowed).toBe(true);
    expect(decideContainment(engine, { principal: alice, nhi: svc })).toMatchObject({
      allowed: false,
      reasons: ['only a detector, an admin or the orchestrator may start a containment'],
    });
  });
});
