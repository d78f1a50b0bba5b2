// Needs me: the requests I may decide (the policy's reasons, approvals still needed, the deadline),
// a request form, and my own requests with their state.
import type { JitStatus } from '../../scenarios/jit/contract';
import type { ElevationSummary, Nhi } from '../api-client.js';
import type { Ctx } from '../context.js';
import { badge, h, table, timer, when } from '../dom.js';

interface Data {
  pending: JitStatus[];
  mine: ElevationSummary[];
  nhis: string[];
}

export const needsMeView = {
  id: 'needs-me',
  async load(ctx: Ctx): Promise<Data> {
    const [pendingList, all, nhis] = await Promise.all([
      ctx.has('approver') ? ctx.api.getElevations({ state: 'awaiting_approval', limit: 50 }) : null,
      ctx.api.getElevations({ limit: 50 }),
      ctx.has('requester') ? ctx.api.getNhis({ limit: 200 }) : null,
    ]);
    const pending = await Promise.all((pendingList?.body.items ?? []).map(async (e) => (await ctx.api.getElevationsById(e.id)).body as unknown as JitStatus));
    return {
      pending: pending.filter((s) => s.state === 'awaiting_approval'),
      mine: all.body.items.filter((e) => e.requestedBy === ctx.me.id),
      nhis: (nhis?.body.items ?? []).filter((n: Nhi) => n.status === 'active').map((n: Nhi) => n.id),
    };
  },
  draw(ctx: Ctx, d: Data): Node[] {
    const out: Node[] = [];
    if (ctx.has('approver')) {
      const rows = d.pending.map((s) => {
        const own = s.requestedBy === ctx.me.id;
        const comment = h('input', { type: 'text', name: 'comment', placeholder: 'comment (a reason to deny)', 'aria-label': `comment on ${s.workflowId}` });
        const approve = h('button', { type: 'button', class: 'primary', 'data-action': 'approve' }, 'Approve');
        const deny = h('button', { type: 'button', class: 'danger', 'data-action': 'deny' }, 'Deny');
        approve.addEventListener('click', () => ctx.act(approve, `Approve ${s.workflowId}`, () => ctx.api.postElevationsByIdApprove(s.workflowId, comment.value ? { comment: comment.value } : {})));
        deny.addEventListener('click', () => ctx.act(deny, `Deny ${s.workflowId}`, () => ctx.api.postElevationsByIdDeny(s.workflowId, { reason: comment.value })));
        return h(
          'tr',
          { 'data-workflow-id': s.workflowId },
          h('td', {}, h('strong', {}, s.nhiId), ' → ', s.entitlements.map((e) => e.entitlement).join(', '), h('br'), `${s.durationMinutes}m`, s.changeId ? ` · ${s.changeId}` : '', h('br'), ctx.workflowLink(s.workflowId)),
          h('td', {}, s.requestedBy, h('br'), h('em', {}, s.justification)),
          h('td', {}, h('ul', { class: 'reasons' }, (s.decision?.reasons ?? []).map((r) => h('li', {}, r)))),
          h('td', { class: 'needed' }, `${Math.max(0, s.requiredApprovals - s.approvals.length)} of ${s.requiredApprovals} still needed`, s.approvals.length ? h('br') : null, s.approvals.map((a) => `approved by ${a.by}`).join(', ')),
          h('td', {}, timer(s.approvalDeadline)),
          h('td', {}, own ? h('span', { class: 'empty' }, 'your own request') : h('div', { class: 'actions' }, comment, approve, deny)),
        );
      });
      out.push(h('section', { class: 'card', id: 'pending-approvals' }, h('h2', {}, 'Pending approvals'), table(['request', 'requested by', 'policy says', 'approvals', 'deadline', ''], rows, 'Nothing is waiting for you.')));
    }
    if (ctx.has('requester')) out.push(requestForm(ctx, d.nhis));
    const mine = d.mine.map((e) =>
      h('tr', { 'data-workflow-id': e.id }, h('td', {}, ctx.workflowLink(e.id)), h('td', {}, e.nhiId ?? ''), h('td', {}, badge(e.state)), h('td', {}, when(e.startTime)), h('td', {}, e.closeTime ? when(e.closeTime) : 'open')),
    );
    out.push(h('section', { class: 'card', id: 'my-requests' }, h('h2', {}, 'My requests'), table(['elevation', 'NHI', 'state', 'requested', 'closed'], mine, 'You have not requested anything yet.')));
    return out;
  },
};

/** What was typed into the request form: kept across redraws (a poll that brings news redraws the view). */
const draft: Record<string, string> = { entitlements: 'estate_readonly', durationMinutes: '30' };
function kept<T extends HTMLInputElement | HTMLSelectElement>(el: T): T {
  if (draft[el.name] !== undefined) el.value = draft[el.name];
  el.addEventListener('input', () => (draft[el.name] = el.value));
  el.addEventListener('change', () => (draft[el.name] = el.value));
  return el;
}

function requestForm(ctx: Ctx, nhis: string[]): HTMLElement {
  const nhi = kept(h('select', { name: 'nhiId', id: 'req-nhi' }, nhis.map((id) => h('option', { value: id }, id))));
  const ents = kept(h('input', { name: 'entitlements', id: 'req-entitlements', 'aria-label': 'entitlements' }));
  const minutes = kept(h('input', { name: 'durationMinutes', id: 'req-minutes', type: 'number', min: 1 }));
  const why = kept(h('input', { name: 'justification', id: 'req-justification', placeholder: 'why (at least 10 characters)' }));
  const change = kept(h('input', { name: 'changeId', id: 'req-change', placeholder: 'optional, e.g. CHG-42' }));
  const ticket = kept(h('input', { name: 'ticket', id: 'req-ticket', placeholder: 'optional' }));
  const submit = h('button', { type: 'submit', class: 'primary', id: 'req-submit' }, 'Request');
  const form = h(
    'form',
    { class: 'grid', id: 'request-form' },
    h('label', { for: 'req-nhi' }, 'NHI'), nhi,
    h('label', { for: 'req-entitlements' }, 'Entitlements'), ents,
    h('label', { for: 'req-minutes' }, 'Minutes'), minutes,
    h('label', { for: 'req-justification' }, 'Justification'), why,
    h('label', { for: 'req-change' }, 'Change id'), change,
    h('label', { for: 'req-ticket' }, 'Ticket'), ticket,
    h('span'), submit,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void ctx.act(submit, 'Request', async () => {
      const r = await ctx.api.postElevations({
        nhiId: nhi.value,
        entitlements: ents.value.split(',').map((s) => s.trim()).filter(Boolean),
        durationMinutes: Number(minutes.value),
        justification: why.value,
        ...(change.value.trim() ? { changeId: change.value.trim() } : {}),
        ...(ticket.value.trim() ? { ticket: ticket.value.trim() } : {}),
      });
      return r;
    });
  });
  return h('section', { class: 'card', id: 'request-access' }, h('h2', {}, 'Request access'), form);
}
