import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  NEVER_THE_SECRET,
  LeakPayloadError,
  fingerprintsFor,
  fingerprintsOfKind,
  genericLeakSchema,
  hmslHash,
  isIgnored,
  looksLikeRawCredential,
  makeGenericLeakSchema,
  matchByExposureHints,
  normalizeGenericLeak,
  parseGitguardianEvent,
  parseGithubAlert,
  sha256Hex,
  verifyGithubSignature,
  verifyGitguardianSignature,
  type Ignored,
  type NormalizedAlert,
} from '../../../scenarios/leak/intake';

// The vendors' payload shapes, kept in the repository (tests/scenarios/leak/fixtures/README.md says what each is).
const FIXTURES = path.resolve(__dirname, 'fixtures');
const githubRaw = readFileSync(path.join(FIXTURES, 'github-secret-scanning-alert-created.json'));
const gitguardianRaw = readFileSync(path.join(FIXTURES, 'gitguardian-incident-triggered.json'));
const githubFixture = () => JSON.parse(githubRaw.toString('utf8'));
const gitguardianFixture = () => JSON.parse(gitguardianRaw.toString('utf8'));

const hex = (key: string, body: Buffer | string) => createHmac('sha256', key).update(body).digest('hex');
const tamper = (b: Buffer) => {
  const copy = Buffer.from(b);
  copy[copy.length - 3] ^= 0x01;
  return copy;
};

function alert(r: NormalizedAlert | Ignored): NormalizedAlert {
  if (isIgnored(r)) throw new Error(`expected an alert, got ignored: ${r.reason}`);
  return r;
}
function ignored(r: NormalizedAlert | Ignored): Ignored {
  if (!isIgnored(r)) throw new Error(`expected ignored, got ${r.action}`);
  return r;
}

describe('GitHub signature', () => {
  const secret = 'gh-webhook-secret';

  it('matches GitHub’s published test vector', () => {
    const header = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    expect(verifyGithubSignature(Buffer.from('Hello, World!'), header, "It's a Secret to Everybody")).toBe(true);
  });

  it('verifies the fixture with the right signature and rejects a wrong one, secret or body', () => {
    const good = `sha256=${hex(secret, githubRaw)}`;
    expect(verifyGithubSignature(githubRaw, good, secret)).toBe(true);
    expect(verifyGithubSignature(githubRaw, `sha256=${hex('other', githubRaw)}`, secret)).toBe(false);
    expect(verifyGithubSignature(githubRaw, good, 'wrong-secret')).toBe(false);
    expect(verifyGithubSignature(tamper(githubRaw), good, secret)).toBe(false);
  });

  it('returns false for missing or malformed headers and for an empty secret', () => {
    const digest = hex(secret, githubRaw);
    for (const header of [undefined, '', digest, `sha1=${digest}`, `sha256=${digest.slice(2)}`, `sha256=${digest}00`, `sha256=${'z'.repeat(64)}`]) {
      expect(verifyGithubSignature(githubRaw, header, secret)).toBe(false);
    }
    expect(verifyGithubSignature(githubRaw, `sha256=${hex('', githubRaw)}`, '')).toBe(false);
  });
});

describe('GitGuardian signature', () => {
  const token = 'gg-signature-token';
  const now = new Date('2026-11-20T09:15:42Z');
  const ts = String(Math.floor(now.getTime() / 1000));
  const sign = (timestamp: string, body: Buffer, key = token) => `sha256=${hex(timestamp + key, body)}`;

  it('matches GitGuardian’s published test vector', () => {
    const header = 'sha256=172fe3d694b734aa53dc892fd3b8d62163fc240064de570ba006900bb54a0fc2';
    expect(verifyGitguardianSignature(Buffer.from('bar'), header, '0', 'foo', new Date(0))).toEqual({ ok: true });
  });

  it('verifies the fixture and rejects a wrong signature, token or body', () => {
    expect(verifyGitguardianSignature(gitguardianRaw, sign(ts, gitguardianRaw), ts, token, now)).toEqual({ ok: true });
    const mismatch = { ok: false, reason: 'mismatch' };
    expect(verifyGitguardianSignature(gitguardianRaw, sign(ts, gitguardianRaw, 'other'), ts, token, now)).toEqual(mismatch);
    expect(verifyGitguardianSignature(gitguardianRaw, sign(ts, gitguardianRaw), ts, 'wrong-token', now)).toEqual(mismatch);
    expect(verifyGitguardianSignature(tamper(gitguardianRaw), sign(ts, gitguardianRaw), ts, token, now)).toEqual(mismatch);
    // The timestamp is part of the key: moving it breaks the signature.
    expect(verifyGitguardianSignature(gitguardianRaw, sign(ts, gitguardianRaw), String(Number(ts) - 1), token, now)).toEqual(mismatch);
  });

  it('rejects stale and future timestamps outside the tolerance, even when correctly signed', () => {
    const at = (offset: number) => String(Number(ts) + offset);
    const check = (t: string, tolerance?: number) =>
      verifyGitguardianSignature(gitguardianRaw, sign(t, gitguardianRaw), t, token, now, tolerance);
    expect(check(at(-301))).toEqual({ ok: false, reason: 'stale' });
    expect(check(at(+301))).toEqual({ ok: false, reason: 'stale' });
    expect(check(at(-299))).toEqual({ ok: true });
    expect(check(at(+299))).toEqual({ ok: true });
    expect(check(at(-61), 60)).toEqual({ ok: false, reason: 'stale' });
  });

  it('distinguishes missing from malformed headers', () => {
    const sig = sign(ts, gitguardianRaw);
    expect(verifyGitguardianSignature(gitguardianRaw, undefined, ts, token, now)).toEqual({ ok: false, reason: 'missing' });
    expect(verifyGitguardianSignature(gitguardianRaw, sig, undefined, token, now)).toEqual({ ok: false, reason: 'missing' });
    expect(verifyGitguardianSignature(gitguardianRaw, sig, '', token, now)).toEqual({ ok: false, reason: 'missing' });
    for (const [s, t] of [[sig.slice(7), ts], [`sha1=${sig.slice(7)}`, ts], [sig, 'yesterday'], [sig, '1.5'], [sig, `-${ts}`]]) {
      expect(verifyGitguardianSignature(gitguardianRaw, s, t, token, now)).toEqual({ ok: false, reason: 'malformed' });
    }
  });
});

describe('parseGithubAlert', () => {
  const withAction = (action: string, alertPatch: Record<string, unknown> = {}) => {
    const p = githubFixture();
    p.action = action;
    Object.assign(p.alert, { updated_at: '2026-11-20T10:00:00Z' }, alertPatch);
    return p;
  };

  it('maps the fixture to the expected NormalizedAlert', () => {
    expect(parseGithubAlert('secret_scanning_alert', '72d3162e-cc78-11e3-81ab-4c9367dc0958', githubFixture())).toEqual({
      source: 'github',
      externalId: 'github:acme-corp/payments-service#42',
      deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      action: 'created',
      trigger: true,
      severity: 'critical',
      repository: 'acme-corp/payments-service',
      secretType: 'postgres_connection_uri',
      fingerprints: [],
      evidenceUrl: 'https://github.com/acme-corp/payments-service/security/secret-scanning/42',
      detectedAt: '2026-11-20T09:14:03.000Z',
      summary: 'github #42 postgres_connection_uri in acme-corp/payments-service',
    });
  });

  it.each(['created', 'reopened', 'publicly_leaked'])('%s triggers', (action) => {
    const a = alert(parseGithubAlert('secret_scanning_alert', 'd', withAction(action)));
    expect(a.trigger).toBe(true);
    expect(a.action).toBe(action);
  });

  it('uses the event time, not the alert’s creation, for later actions', () => {
    const a = alert(parseGithubAlert('secret_scanning_alert', 'd', withAction('reopened')));
    expect(a.detectedAt).toBe('2026-11-20T10:00:00.000Z');
    expect(a.summary).toBe('github #42 postgres_connection_uri in acme-corp/payments-service (reopened)');
  });

  it('validated triggers only when the secret is active', () => {
    expect(alert(parseGithubAlert('secret_scanning_alert', 'd', withAction('validated', { validity: 'active' }))).trigger).toBe(true);
    for (const validity of ['inactive', 'unknown']) {
      const r = ignored(parseGithubAlert('secret_scanning_alert', 'd', withAction('validated', { validity })));
      expect(r.reason).toMatch(/only an active secret triggers/);
      expect(r.externalId).toBe('github:acme-corp/payments-service#42');
    }
  });

  it('resolved is recorded without triggering', () => {
    const a = alert(parseGithubAlert('secret_scanning_alert', 'd', withAction('resolved', {
      state: 'resolved', resolution: 'revoked', resolved_at: '2026-11-20T11:00:00Z',
    })));
    expect(a).toMatchObject({ trigger: false, action: 'resolved', detectedAt: '2026-11-20T11:00:00.000Z' });
  });

  it.each(['assigned', 'unassigned', 'location_created', 'something_new'])('%s is ignored with a reason', (action) => {
    const r = ignored(parseGithubAlert('secret_scanning_alert', 'd', withAction(action)));
    expect(r).toMatchObject({ source: 'github', action, deliveryId: 'd' });
    expect(r.reason).toMatch(/does not affect containment/);
  });

  it('ignores other events (ping, push) without looking at the body', () => {
    expect(ignored(parseGithubAlert('ping', 'd', { zen: 'Keep it logically awesome.' })).reason).toMatch(/not secret_scanning_alert/);
    expect(ignored(parseGithubAlert(undefined, undefined, {})).reason).toMatch(/not secret_scanning_alert/);
  });

  it('ignored actions need no valid alert; handled ones with a broken payload throw LeakPayloadError', () => {
    expect(isIgnored(parseGithubAlert('secret_scanning_alert', 'd', { action: 'assigned' }))).toBe(true);
    const broken = githubFixture();
    delete broken.alert.number;
    broken.repository.full_name = 'not a repo';
    expect(() => parseGithubAlert('secret_scanning_alert', 'd', broken)).toThrow(LeakPayloadError);
    try {
      parseGithubAlert('secret_scanning_alert', 'd', broken);
    } catch (err) {
      expect((err as LeakPayloadError).issues.map((i) => i.path)).toEqual(expect.arrayContaining(['alert.number', 'repository.full_name']));
    }
    expect(() => parseGithubAlert('secret_scanning_alert', 'd', 'not json object')).toThrow(LeakPayloadError);
  });

  it('derives severity from exposure and validity', () => {
    const sev = (action: string, patch: Record<string, unknown>) =>
      alert(parseGithubAlert('secret_scanning_alert', 'd', withAction(action, patch))).severity;
    expect(sev('created', { validity: 'active' })).toBe('critical');
    expect(sev('created', { validity: 'unknown', publicly_leaked: true })).toBe('critical');
    expect(sev('publicly_leaked', { validity: 'unknown' })).toBe('critical');
    expect(sev('created', { validity: 'unknown' })).toBe('high');
    expect(sev('created', { validity: null })).toBe('high');
    expect(sev('created', { validity: 'inactive' })).toBe('low');
  });

  it('drops a secret value the payload should never carry', () => {
    const p = githubFixture();
    p.alert.secret = 'postgres://svc_payments:Sup3r-Secret-Value@db.internal:5432/payments';
    p.secret = 'Sup3r-Secret-Value';
    const out = JSON.stringify(parseGithubAlert('secret_scanning_alert', 'd', p));
    expect(out).not.toContain('Sup3r-Secret-Value');
  });

  it('keeps the summary on one line whatever the vendor sends', () => {
    const p = githubFixture();
    p.alert.secret_type = 'custom\npattern\u0007';
    const a = alert(parseGithubAlert('secret_scanning_alert', 'd', p));
    expect(a.secretType).toBe('custom pattern');
    expect(a.summary).toBe(
      'github #42 custom pattern in acme-corp/payments-service',
    );
  });
});

describe('parseGitguardianEvent', () => {
  const withAction = (action: string, incidentPatch: Record<string, unknown> = {}) => {
    const p = gitguardianFixture();
    p.action = action;
    p.timestamp = '2026-11-21T08:00:00.123Z';
    Object.assign(p.incident, incidentPatch);
    return p;
  };

  it('maps the fixture to the expected NormalizedAlert', () => {
    expect(parseGitguardianEvent(gitguardianFixture())).toEqual({
      source: 'gitguardian',
      externalId: 'gitguardian:3759',
      action: 'incident_triggered',
      trigger: true,
      severity: 'critical',
      repository: 'acme-corp/payments-service',
      secretType: 'postgres_assignment',
      fingerprints: [
        'hmsl:9a9f1c0e5b7f0a3d5c6e2b1f4d8a7c3e9b0f2d4a6c8e1b3d5f7a9c0e2b4d6f81',
        'gg-secret-hash:Ri9FjVgdOlPnBmujoxP4XPJcbe82BhJXB/SAngijw/juCISuOMgPzYhV28m6OG24',
      ],
      evidenceUrl: 'https://dashboard.gitguardian.com/workspace/1/incidents/3759',
      detectedAt: '2026-11-20T09:15:37.000Z',
      summary: 'gitguardian #3759 postgres_assignment in acme-corp/payments-service',
    });
  });

  it.each(['incident_triggered', 'new_occurrence', 'incident_reopened', 'incident_regression'])('%s triggers', (action) => {
    const a = alert(parseGitguardianEvent(withAction(action), 'gg-1'));
    expect(a).toMatchObject({ trigger: true, action, deliveryId: 'gg-1' });
  });

  it('later events are timed by the event timestamp', () => {
    const a = alert(parseGitguardianEvent(withAction('new_occurrence')));
    expect(a.detectedAt).toBe('2026-11-21T08:00:00.123Z');
    expect(a.summary).toBe('gitguardian #3759 postgres_assignment in acme-corp/payments-service (new_occurrence)');
  });

  it.each(['incident_resolved', 'incident_ignored'])('%s is recorded without triggering', (action) => {
    expect(alert(parseGitguardianEvent(withAction(action)))).toMatchObject({ trigger: false, action });
  });

  it.each(['incident_severity_changed', 'incident_assignment', 'new_comment', 'incident_access_granted'])(
    '%s is ignored with a reason',
    (action) => {
      const r = ignored(parseGitguardianEvent(withAction(action)));
      expect(r).toMatchObject({ source: 'gitguardian', action });
      expect(r.reason).toMatch(/does not affect containment/);
    },
  );

  it('maps GitGuardian severities, treating unscored incidents as high', () => {
    const sev = (severity: unknown) => alert(parseGitguardianEvent(withAction('incident_triggered', { severity }))).severity;
    expect(sev('critical')).toBe('critical');
    expect(sev('high')).toBe('high');
    expect(sev('medium')).toBe('medium');
    expect(sev('low')).toBe('low');
    expect(sev('info')).toBe('low');
    expect(sev('unknown')).toBe('high');
    expect(sev(null)).toBe('high');
  });

  it('works without an occurrence (no repository) and without hashes', () => {
    const p = withAction('incident_triggered', { hmsl_hash: null, secret_hash: null, gitguardian_url: null });
    delete p.occurrence;
    const a = alert(parseGitguardianEvent(p));
    expect(a.repository).toBeUndefined();
    expect(a.fingerprints).toEqual([]);
    expect(a.evidenceUrl).toBeUndefined();
    expect(a.summary).toBe('gitguardian #3759 postgres_assignment');
  });

  it('throws LeakPayloadError for a handled action with a broken incident', () => {
    const p = withAction('incident_triggered', { hmsl_hash: 'not-a-hash' });
    delete p.incident.id;
    expect(() => parseGitguardianEvent(p)).toThrow(LeakPayloadError);
    expect(() => parseGitguardianEvent({ incident: {} })).toThrow(LeakPayloadError);
  });

  it('drops a secret value the payload should never carry', () => {
    const p = gitguardianFixture();
    p.incident.secret = 'Sup3r-Secret-Value';
    p.occurrence.matches = [{ type: 'password', match: 'Sup3r-Secret-Value' }];
    expect(JSON.stringify(parseGitguardianEvent(p))).not.toContain('Sup3r-Secret-Value');
  });
});

describe('fingerprints', () => {
  it('sha256Hex is plain sha256 of the UTF-8 value', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(Buffer.from('abc'))).toBe(sha256Hex('abc'));
  });

  it('hmslHash matches GitGuardian’s own test vector (ggshield test_hmsl_crypto.py)', () => {
    expect(hmslHash('test')).toBe('bdbfe17c6018147f07ce79f8ec415a075d761ccacc14803e7d645155bf21a75f');
  });

  it('fingerprintsFor gives both, and an alert’s hmsl fingerprint can be matched against them', () => {
    const issued = 'kq3V9xw2Zr7LmPa0TbYc8NdE1fGh4JkS6uVw5XyZ0aB';
    const fp = fingerprintsFor(issued);
    expect(fp).toEqual({ sha256: sha256Hex(issued), hmsl: hmslHash(issued) });
    expect(fp.hmsl).toMatch(/^[0-9a-f]{64}$/);
    expect(fp.hmsl).not.toBe(fp.sha256);

    const p = gitguardianFixture();
    p.incident.hmsl_hash = fp.hmsl.toUpperCase(); // compared case-insensitively
    const a = alert(parseGitguardianEvent(p));
    expect(fingerprintsOfKind(a, 'hmsl')).toEqual([fp.hmsl]);
    expect(fingerprintsOfKind(a, 'gg-secret-hash')).toHaveLength(1);
    expect(fingerprintsOfKind(a, 'sha256')).toEqual([]);
  });
});

describe('matchByExposureHints', () => {
  const nhis = [
    { id: 'svc_payments', exposureHints: [{ repository: 'acme-corp/payments-service', secretType: 'postgres_connection_uri' }] },
    { id: 'svc_payments_gg', exposureHints: [{ repository: 'acme-corp/payments-service', secretType: 'postgres_assignment' }] },
    { id: 'svc_any_secret', exposureHints: [{ repository: 'Acme-Corp/Payments-Service.git' }] },
    { id: 'svc_reports', exposureHints: [{ repository: 'acme-corp/reports' }, { repository: 'acme-corp/reports-legacy' }] },
    { id: 'svc_no_hints', exposureHints: [] },
  ];

  it('matches repository (case-insensitively) and, when the hint has one, secret type', () => {
    const gh = alert(parseGithubAlert('secret_scanning_alert', 'd', githubFixture()));
    expect(matchByExposureHints(gh, nhis)).toEqual(['svc_payments', 'svc_any_secret']);
    const gg = alert(parseGitguardianEvent(gitguardianFixture()));
    expect(matchByExposureHints(gg, nhis)).toEqual(['svc_payments_gg', 'svc_any_secret']);
    expect(matchByExposureHints({ repository: 'acme-corp/reports-legacy', secretType: 'x' }, nhis)).toEqual(['svc_reports']);
  });

  it('matches nothing without a repository or for another repository', () => {
    expect(matchByExposureHints({ secretType: 'postgres_connection_uri' }, nhis)).toEqual([]);
    expect(matchByExposureHints({ repository: 'acme-corp/payments' }, nhis)).toEqual([]);
    expect(matchByExposureHints({ repository: 'acme-corp/payments-service' }, [])).toEqual([]);
  });

  it('returns each NHI once even when several of its hints match', () => {
    const dup = [{ id: 'svc_x', exposureHints: [{ repository: 'a/b' }, { repository: 'A/B', secretType: 't' }] }];
    expect(matchByExposureHints({ repository: 'a/b', secretType: 't' }, dup)).toEqual(['svc_x']);
  });
});

describe('genericLeakSchema', () => {
  const fp = sha256Hex('the-leaked-credential');
  const now = new Date('2026-11-20T12:00:00Z');
  const schema = makeGenericLeakSchema(() => now);
  const messages = (body: unknown) => {
    const r = schema.safeParse(body);
    if (r.success) throw new Error('expected a validation error');
    return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('accepts good bodies', () => {
    expect(schema.parse({ nhiId: 'svc_payments', source: 'pagerduty-scanner', severity: 'high' })).toEqual({
      nhiId: 'svc_payments', source: 'pagerduty-scanner', severity: 'high',
    });
    expect(schema.safeParse({ fingerprint: fp, source: 'trufflehog', severity: 'critical' }).success).toBe(true);
    const full = {
      nhiId: 'svc_payments',
      fingerprint: fp,
      source: 'Security Team Scanner v2',
      severity: 'medium',
      evidenceUrl: 'https://github.com/acme-corp/payments-service/commit/d670460b4b4aece5915caf5c68d12f560a9fe3e4',
      detectedAt: '2026-11-20T11:59:00+01:00',
    };
    expect(schema.parse(full)).toEqual(full);
    // A little clock skew is not the future.
    expect(schema.safeParse({ ...full, detectedAt: '2026-11-20T12:00:30Z' }).success).toBe(true);
    expect(genericLeakSchema.safeParse({ nhiId: 'svc_payments', source: 'x', severity: 'low' }).success).toBe(true);
  });

  it.each(['secret', 'value', 'password', 'token', 'credential', 'apiKey', 'client_secret', 'connectionString'])(
    'rejects a body with a "%s" field, saying to send the fingerprint',
    (field) => {
      const m = messages({ nhiId: 'svc_payments', source: 'ci', severity: 'high', [field]: 'hunter2' });
      expect(m).toEqual([`: "${field}" must not be sent: ${NEVER_THE_SECRET}`]);
    },
  );

  it('rejects credential-looking strings anywhere, without echoing them', () => {
    const leaked = 'Zk9_fP2qLm8vRt4wZy7uBn3cDs6eGh1jKa5oIx0wq1E';
    const cases: [Record<string, unknown>, string][] = [
      [{ nhiId: leaked, source: 'ci', severity: 'high' }, `nhiId: nhiId looks like a credential: ${NEVER_THE_SECRET}`],
      [{ nhiId: 'svc_payments', source: 'AKIAIOSFODNN7EXAMPLE', severity: 'high' }, `source: source looks like a credential: ${NEVER_THE_SECRET}`],
      [{ nhiId: 'svc_payments', source: 'ci', severity: 'high', evidenceUrl: 'postgres://svc:hunter2@db/payments' }, `evidenceUrl: evidenceUrl looks like a credential: ${NEVER_THE_SECRET}`],
      [{ nhiId: 'svc_payments', source: 'ci', severity: 'high', evidenceUrl: 'https://paste.example/raw?token=abc' }, `evidenceUrl: evidenceUrl looks like a credential: ${NEVER_THE_SECRET}`],
      [{ nhiId: 'svc_payments', source: 'ci', severity: 'high', note: leaked }, `: "note" must not be sent: ${NEVER_THE_SECRET}`],
      [{ nhiId: 'svc_payments', source: 'ci', severity: 'high', evidence: { match: 'ghp_abcdefghijklmnopqrstuvwxyz0123456789' } }, `: "evidence" must not be sent: ${NEVER_THE_SECRET}`],
    ];
    for (const [body, message] of cases) {
      const r = schema.safeParse(body);
      expect(r.success).toBe(false);
      expect(messages(body)).toContain(message);
      expect(JSON.stringify(r.error)).not.toContain(leaked);
      expect(JSON.stringify(r.error)).not.toContain('hunter2');
    }
    expect(messages(leaked)).toEqual([`: body must be a JSON object: ${NEVER_THE_SECRET}`]);
  });

  it('rejects a fingerprint that is not a lowercase sha256 hex, explaining why', () => {
    const expected = `fingerprint: fingerprint must be the sha256 of the secret as 64 lowercase hex characters: ${NEVER_THE_SECRET}`;
    for (const fingerprint of ['hunter2', fp.toUpperCase(), `sha256:${fp}`, fp.slice(1), `${fp}0`]) {
      expect(messages({ fingerprint, source: 'ci', severity: 'high' })).toEqual([expected]);
    }
  });

  it('requires one of nhiId, fingerprint or accessKeyId', () => {
    expect(messages({ source: 'ci', severity: 'high' })).toEqual([
      ': one of nhiId, fingerprint (sha256 hex of the leaked secret) or accessKeyId (of a leaked AWS key) is required',
    ]);
  });

  it('takes an AWS access key id (not a secret) and carries only its sha256; refuses a secret access key in its place', () => {
    const body = schema.parse({ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', source: 'aws-health', severity: 'critical' });
    const alert = normalizeGenericLeak(body, now);
    expect(alert.fingerprints).toEqual([`sha256:${sha256Hex('AKIAIOSFODNN7EXAMPLE')}`]);
    expect(JSON.stringify(alert)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    const secretKey = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const r = schema.safeParse({ accessKeyId: secretKey, source: 'ci', severity: 'high' });
    expect(r.success).toBe(false);
    expect(messages({ accessKeyId: secretKey, source: 'ci', severity: 'high' })[0]).toMatch(/^accessKeyId: accessKeyId must be an AWS access key id/);
    expect(JSON.stringify(r.error)).not.toContain(secretKey);
  });

  it('rejects bad fields with useful messages', () => {
    const ok = { nhiId: 'svc_payments', source: 'ci', severity: 'high' };
    expect(messages({ ...ok, severity: 'urgent' })).toEqual(['severity: severity must be one of low, medium, high, critical']);
    expect(messages({ ...ok, nhiId: 'Svc Payments' })).toEqual(['nhiId: nhiId must be an NHI id (lowercase slug, 2–63 characters)']);
    expect(messages({ ...ok, source: '' })).toEqual(expect.arrayContaining(['source: source is required']));
    expect(messages({ ...ok, source: 'x'.repeat(65) })).toEqual(['source: source must be at most 64 characters']);
    expect(messages({ ...ok, source: 'two\nlines' })).toEqual(['source: source must be a single line of text']);
    expect(messages({ ...ok, evidenceUrl: 'ftp://example.com/x' })).toEqual(['evidenceUrl: must be an http(s) URL']);
    expect(messages({ ...ok, evidenceUrl: 'not a url' })).toEqual(['evidenceUrl: must be an http(s) URL']);
    expect(messages({ ...ok, detectedAt: '2026-11-20T13:00:00Z' })).toEqual(['detectedAt: detectedAt must not be in the future']);
    expect(messages({ ...ok, detectedAt: 'yesterday' })).toEqual([
      'detectedAt: detectedAt must be an ISO 8601 date-time with a zone, e.g. 2026-11-20T09:14:03Z',
    ]);
    expect(messages({ ...ok, detectedAt: '2026-11-20T11:00:00' })).toHaveLength(1);
    expect(messages({ ...ok, ticket: 'SEC-123' })).toEqual([': unknown field(s) "ticket"']);
    expect(messages({ ...ok, severity: undefined })).toEqual(['severity: severity must be one of low, medium, high, critical']);
  });
});

describe('looksLikeRawCredential', () => {
  it('flags credential shapes and leaves names, URLs and fingerprints alone', () => {
    for (const s of [
      'Zk9_fP2qLm8vRt4wZy7uBn3cDs6eGh1jKa5oIx0wq1E', // like the orchestrator's own (32 bytes base64url)
      'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
      'xoxb-1234567890-abcdefghij',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc',
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      'password=hunter2',
      'mysql://root:hunter2@localhost/db',
    ]) {
      expect([s, looksLikeRawCredential(s)]).toEqual([s, true]);
    }
    for (const s of [
      sha256Hex('x'),
      'svc_payments',
      'GitGuardian-Webhook-Production-2024',
      'SecretScanningAlertWebhookV2Handler',
      'k8s-cluster-eu-west-1-prod-a1b2',
      'ci/pipeline#12345/job-Build-Linux-x64',
      'https://github.com/acme-corp/payments-service/commit/d670460b4b4aece5915caf5c68d12f560a9fe3e4',
    ]) {
      expect([s, looksLikeRawCredential(s)]).toEqual([s, false]);
    }
  });
});

describe('normalizeGenericLeak', () => {
  const fp = sha256Hex('the-leaked-credential');
  const receivedAt = new Date('2026-11-20T12:00:00.500Z');

  it('labels the fingerprint, names the NHI and falls back to the receipt time', () => {
    const body = genericLeakSchema.parse({ nhiId: 'svc_payments', fingerprint: fp, source: 'trufflehog', severity: 'critical' });
    expect(normalizeGenericLeak(body, receivedAt, 'idem-1')).toEqual({
      source: 'generic',
      externalId: `generic:trufflehog:${fp}`,
      deliveryId: 'idem-1',
      nhiId: 'svc_payments',
      action: 'reported',
      trigger: true,
      severity: 'critical',
      fingerprints: [`sha256:${fp}`],
      detectedAt: '2026-11-20T12:00:00.500Z',
      summary: `generic trufflehog: svc_payments sha256:${fp.slice(0, 12)}…`,
    });
  });

  it('keeps the reported detection time and evidence', () => {
    const body = genericLeakSchema.parse({
      nhiId: 'svc_payments', source: 'pentest', severity: 'low',
      evidenceUrl: 'https://tickets.example/SEC-1', detectedAt: '2026-11-20T09:00:00+01:00',
    });
    expect(normalizeGenericLeak(body, receivedAt)).toMatchObject({
      externalId: 'generic:pentest:svc_payments',
      fingerprints: [],
      evidenceUrl: 'https://tickets.example/SEC-1',
      detectedAt: '2026-11-20T08:00:00.000Z',
      summary: 'generic pentest: svc_payments',
    });
  });
});
