// Incidents: leak containments with their steps (alert → rotated → sessions ended → verified),
// unmatched alerts to bind to an NHI, anomaly cases (clear / confirm / approve throttle) and
// offboardings (grace countdown, attestation, abort / confirm). Open cases are found through each
// NHI's running workflows (the NhiId and Scenario search attributes).
import type { AnomalyStatus } from '../../scenarios/anomaly/contract';
import type { LeakStatus } from '../../scenarios/leak/contract';
import type { OffboardingStatus } from '../../scenarios/offboarding/contract';
import type { Incident } from '../api-client.js';
import type { Ctx } from '../context.js';
import { badge, h, table, timer, when } from '../dom.js';

interface Data {
  incidents: Incident[];
  leaks: LeakStatus[];
  anomalies: AnomalyStatus[];
  offboardings: OffboardingStatus[];
  nhis: string[];
}

export const incidentsView = {
  id: 'incidents',
  async load(ctx: Ctx): Promise<Data> {
    const [incidents, nhis] = await Promise.all([ctx.api.getIncidents({ limit: 30 }), ctx.api.getNhis({ limit: 200 })]);
    const details = await Promise.all(nhis.body.items.map(async (n) => (await ctx.api.getNhisById(n.id)).body));
    const open = details.flatMap((d) => d.openWorkflows.map((w) => ({ nhiId: d.id, ...w })));
    const of = (scenario: string) => open.filter((w) => w.scenario === scenario);
    const [leaks, anomalies, offboardings] = await Promise.all([
      Promise.all(of('leak').map(async (w) => (await ctx.api.getLeaksByNhiId(w.nhiId)).body as unknown as LeakStatus)),
      Promise.all(of('anomaly').map(async (w) => (await ctx.api.getAnomaliesByNhiId(w.nhiId)).body as unknown as AnomalyStatus)),
      Promise.all(of('offboarding').map(async (w) => (await ctx.api.getOffboardingsById(w.workflowId)).body as unknown as OffboardingStatus)),
    ]);
    return { incidents: incidents.body.items, leaks, anomalies, offboardings, nhis: nhis.body.items.map((n) => n.id) };
  },
  draw(ctx: Ctx, d: Data): Node[] {
    return [leakCard(ctx, d), unmatchedCard(ctx, d), anomalyCard(ctx, d), offboardingCard(ctx, d)];
  },
};

function leakSteps(s: LeakStatus): string[] {
  return [
    `alert ${when(s.detectedAt)} (${s.alerts.length} alert${s.alerts.length === 1 ? '' : 's'}, ${s.severity})`,
    s.rotation?.appliedAt ? `rotated to v${s.rotation.newVersion} ${when(s.rotation.appliedAt)}` : 'rotation pending',
    s.sessionsTerminated !== undefined ? `${s.sessionsTerminated} session(s) ended` : 'sessions not ended yet',
    s.verification ? `verified: old credential ${s.verification.oldCredential}, new ${s.verification.newCredential}` : 'not verified yet',
  ];
}

function leakCard(ctx: Ctx, d: Data): HTMLElement {
  const rows = d.leaks.map((s) =>
    h('tr', { 'data-workflow-id': s.workflowId }, h('td', {}, h('strong', {}, s.nhiId), h('br'), ctx.workflowLink(s.workflowId)), h('td', {}, badge(s.state)), h('td', {}, h('ol', { class: 'timeline' }, leakSteps(s).map((t) => h('li', {}, t))))),
  );
  const closed = d.incidents.filter((i) => i.status !== 'unmatched' && i.kind === 'leak').slice(0, 10).map((i) =>
    h('tr', {}, h('td', {}, i.nhiId ?? '—'), h('td', {}, badge(i.status)), h('td', {}, i.source, ' · ', i.severity), h('td', {}, h('ol', { class: 'timeline' }, i.timeline.map((t) => h('li', {}, `${when(t.at)} ${t.event}${t.detail ? `: ${t.detail}` : ''}`))))),
  );
  return h('section', { class: 'card', id: 'leaks' }, h('h2', {}, 'Leak containments'), table(['NHI', 'state', 'alert → rotated → sessions ended → verified'], rows, 'No containment running.'), h('h3', {}, 'Recent leak incidents'), table(['NHI', 'status', 'source', 'timeline'], closed, 'None.'));
}

function unmatchedCard(ctx: Ctx, d: Data): HTMLElement {
  const rows = d.incidents.filter((i) => i.status === 'unmatched').map((i) => {
    const nhi = h('select', { 'aria-label': 'bind to NHI' }, d.nhis.map((id) => h('option', { value: id }, id)));
    const bind = h('button', { type: 'button', class: 'primary', 'data-action': 'bind' }, 'Bind and contain');
    bind.addEventListener('click', () => ctx.act(bind, `Bind ${i.id}`, () => ctx.api.postIncidentsByIdBind(i.id, { nhiId: nhi.value })));
    return h('tr', { 'data-incident-id': i.id }, h('td', {}, i.source, ' · ', i.severity), h('td', {}, when(i.createdAt)), h('td', {}, JSON.stringify(i.details).slice(0, 160)), h('td', {}, ctx.has('detector', 'approver') ? h('div', { class: 'actions' }, nhi, bind) : null));
  });
  return h('section', { class: 'card', id: 'unmatched' }, h('h2', {}, 'Unmatched alerts'), table(['source', 'received', 'what the alert says', ''], rows, 'No unmatched alert.'));
}

function anomalyCard(ctx: Ctx, d: Data): HTMLElement {
  const rows = d.anomalies.map((s) => {
    const text = h('input', { type: 'text', placeholder: 'reason / comment', 'aria-label': `reason for ${s.nhiId}` });
    const button = (label: string, action: string, fn: () => Promise<unknown>) => {
      const b = h('button', { type: 'button', 'data-action': action }, label);
      b.addEventListener('click', () => ctx.act(b, `${label} ${s.nhiId}`, fn));
      return b;
    };
    const comment = () => (text.value ? { comment: text.value } : {});
    return h(
      'tr',
      { 'data-workflow-id': s.workflowId },
      h('td', {}, h('strong', {}, s.nhiId), h('br'), ctx.workflowLink(s.workflowId)),
      h('td', {}, badge(s.state), ` level ${s.level}`),
      h('td', {}, `${s.evidenceCount} evidence`, s.evidence.length ? `, latest ${s.evidence[s.evidence.length - 1].observedRate}/min` : ''),
      h('td', {}, s.stepUpAt ? ['steps up ', timer(s.stepUpAt)] : s.autoRestoreAt ? ['restores ', timer(s.autoRestoreAt)] : '—'),
      h('td', {}, ctx.has('approver') ? h('div', { class: 'actions' }, text, button('Clear', 'clear', () => ctx.api.postAnomaliesByNhiIdClear(s.nhiId, { reason: text.value })), button('Confirm', 'confirm', () => ctx.api.postAnomaliesByNhiIdConfirm(s.nhiId, comment())), s.state === 'awaiting_confirmation' ? button('Approve throttle', 'approve-throttle', () => ctx.api.postAnomaliesByNhiIdApproveThrottle(s.nhiId, comment())) : null) : null),
    );
  });
  return h('section', { class: 'card', id: 'anomalies' }, h('h2', {}, 'Anomaly cases'), table(['NHI', 'state', 'evidence', 'next', ''], rows, 'No open anomaly case.'));
}

function offboardingCard(ctx: Ctx, d: Data): HTMLElement {
  const rows = d.offboardings.map((s) => {
    const reason = h('input', { type: 'text', placeholder: 'reason to abort', 'aria-label': `abort reason for ${s.nhiId}` });
    const abort = h('button', { type: 'button', class: 'danger', 'data-action': 'abort' }, 'Abort (restore)');
    abort.addEventListener('click', () => ctx.act(abort, `Abort ${s.workflowId}`, () => ctx.api.postOffboardingsByIdAbort(s.workflowId, { reason: reason.value })));
    const confirm = h('button', { type: 'button', class: 'primary', 'data-action': 'confirm' }, 'Confirm now');
    confirm.addEventListener('click', () => ctx.act(confirm, `Confirm ${s.workflowId}`, () => ctx.api.postOffboardingsByIdConfirm(s.workflowId, {})));
    const att = s.attestation;
    return h(
      'tr',
      { 'data-workflow-id': s.workflowId },
      h('td', {}, h('strong', {}, s.nhiId), h('br'), ctx.workflowLink(s.workflowId)),
      h('td', {}, badge(s.state)),
      h('td', {}, att ? [h('span', { class: att.outcome === 'no_standing_access' ? 'ok-text' : 'bad-text' }, att.outcome), h('ul', { class: 'reasons' }, att.checks.map((c) => h('li', {}, `${c.ok ? '✓' : '✗'} ${c.check}`)))] : 'not yet'),
      h('td', {}, s.state === 'grace' ? timer(s.graceEndsAt) : s.watch.endsAt ? ['watch ', timer(s.watch.endsAt)] : '—'),
      h('td', {}, ctx.has('admin') && s.state === 'grace' ? h('div', { class: 'actions' }, reason, abort, confirm) : null),
    );
  });
  return h('section', { class: 'card', id: 'offboardings' }, h('h2', {}, 'Offboardings'), table(['NHI', 'state', 'attestation', 'grace / watch', ''], rows, 'No offboarding running.'));
}
