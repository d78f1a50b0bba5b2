// Inventory: each NHI with its owner, kind and target, its access read back from the target now,
// its open workflows (deep links into the Temporal UI), and its audit trail with the chain verified.
import type { AccessReadback, AuditPage, AuditVerification, NhiDetail } from '../api-client.js';
import type { Ctx } from '../context.js';
import { describeError } from '../context.js';
import { badge, h, table, when } from '../dom.js';

interface Row {
  nhi: NhiDetail;
  access: AccessReadback | { error: string };
}
interface Data {
  rows: Row[];
  trail?: { nhiId: string; events: AuditPage['events']; verification: AuditVerification | { error: string } };
}

let selected: string | null = null;

export const inventoryView = {
  id: 'inventory',
  async load(ctx: Ctx): Promise<Data> {
    const list = await ctx.api.getNhis({ limit: 200 });
    const rows = await Promise.all(
      list.body.items.map(async (n) => {
        const [nhi, access] = await Promise.all([
          ctx.api.getNhisById(n.id).then((r) => r.body),
          ctx.api.getNhisByIdAccess(n.id).then((r) => r.body, (err: unknown) => ({ error: describeError(err) })),
        ]);
        // readAt changes on every read; leaving it out lets a quiet poll skip the redraw.
        return { nhi, access: 'error' in access ? access : { ...access, readAt: '' } };
      }),
    );
    if (!selected) return { rows };
    const [audit, verification] = await Promise.all([
      ctx.api.getAudit({ nhiId: selected, limit: 1000 }),
      ctx.api.getAuditVerify().then((r) => r.body, (err: unknown) => ({ error: describeError(err) })),
    ]);
    return { rows, trail: { nhiId: selected, events: audit.body.events.slice(-20), verification } };
  },
  draw(ctx: Ctx, d: Data): Node[] {
    const rows = d.rows.map(({ nhi, access }) => {
      const trail = h('button', { type: 'button', 'data-action': 'trail' }, selected === nhi.id ? 'Hide trail' : 'Audit trail');
      trail.addEventListener('click', () => {
        selected = selected === nhi.id ? null : nhi.id;
        ctx.refresh();
      });
      const held =
        'error' in access
          ? h('span', { class: 'bad-text' }, access.error)
          : h('span', { class: 'access', 'data-entitlements': access.entitlements.join(',') }, access.exists ? `${access.entitlements.join(', ') || 'no entitlements'} · login ${access.canLogin ? 'on' : 'off'} · limit ${access.connectionLimit === -1 ? '∞' : access.connectionLimit}` : 'identity missing at target');
      return h(
        'tr',
        { 'data-nhi-id': nhi.id },
        h('td', {}, h('strong', {}, nhi.id), h('br'), nhi.tags.join(', ')),
        h('td', {}, nhi.kind, h('br'), nhi.criticality),
        h('td', {}, nhi.owner),
        h('td', {}, badge(nhi.status)),
        h('td', {}, `${nhi.connector}:${nhi.externalRef}`),
        h('td', {}, held),
        h('td', {}, nhi.openWorkflows.length ? nhi.openWorkflows.map((w) => h('div', {}, ctx.workflowLink(w.workflowId), ' ', badge(w.nhiState))) : '—'),
        h('td', {}, trail),
      );
    });
    const out: Node[] = [h('section', { class: 'card', id: 'nhis' }, h('h2', {}, 'Non-human identities'), table(['NHI', 'kind', 'owner', 'status', 'target', 'access now (read back)', 'open workflows', ''], rows, 'No NHI registered.'))];
    if (d.trail) {
      const v = d.trail.verification;
      const chain = 'error' in v ? h('span', { class: 'empty' }, `chain not checked: ${v.error}`) : v.ok ? h('span', { class: 'ok-text', id: 'chain-ok' }, `hash chain verified (${v.checked} events)`) : h('span', { class: 'bad-text' }, `hash chain broken at #${v.brokenAt?.seq}: ${v.brokenAt?.reason}`);
      const events = d.trail.events.map((e) => h('tr', {}, h('td', {}, String(e.seq)), h('td', {}, when(e.at)), h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, e.outcome), h('td', {}, ctx.workflowLink(e.workflowId))));
      out.push(h('section', { class: 'card', id: 'audit-trail' }, h('h2', {}, `Audit trail of ${d.trail.nhiId}`), chain, table(['#', 'at', 'actor', 'action', 'outcome', 'workflow'], events, 'No audit event yet.')));
    }
    return out;
  },
};
