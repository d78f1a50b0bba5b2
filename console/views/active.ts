// Active access: open elevations with a live countdown, extend (policy re-checks the window) and
// "I'm done"; change windows by change id, with a close button for deployers.
import type { JitStatus } from '../../scenarios/jit/contract';
import type { Ctx } from '../context.js';
import { badge, h, table, timer } from '../dom.js';

const OPEN = ['scheduled', 'granting', 'active', 'revoking'];

export const activeView = {
  id: 'active',
  async load(ctx: Ctx): Promise<JitStatus[]> {
    const lists = await Promise.all(OPEN.map((state) => ctx.api.getElevations({ state, limit: 100 })));
    const ids = [...new Set(lists.flatMap((l) => l.body.items.filter((e) => e.executionStatus === 'RUNNING').map((e) => e.id)))];
    const all = await Promise.all(ids.map(async (id) => (await ctx.api.getElevationsById(id)).body as unknown as JitStatus));
    return all.filter((s) => OPEN.includes(s.state)).sort((a, b) => a.workflowId.localeCompare(b.workflowId));
  },
  draw(ctx: Ctx, list: JitStatus[]): Node[] {
    const rows = list.map((s) => {
      const mine = s.requestedBy === ctx.me.id;
      const done = h('button', { type: 'button', class: 'danger', 'data-action': 'done' }, "I'm done");
      done.addEventListener('click', () => ctx.act(done, `End ${s.workflowId}`, () => ctx.api.postElevationsByIdRevoke(s.workflowId, { reason: 'done (console)' })));
      const minutes = h('input', { type: 'number', min: 1, value: 15, 'aria-label': 'extra minutes', class: 'narrow' });
      const extend = h('button', { type: 'button', 'data-action': 'extend' }, 'Extend');
      extend.addEventListener('click', () => ctx.act(extend, `Extend ${s.workflowId}`, () => ctx.api.postElevationsByIdExtend(s.workflowId, { minutes: Number(minutes.value) })));
      const canEnd = mine || ctx.has('approver');
      const readback = s.entitlements.map((e) => h('div', {}, e.entitlement, ' ', e.present === true ? h('span', { class: 'ok-text' }, '✓ at target') : e.present === false ? h('span', { class: 'bad-text' }, '✗ absent') : '…'));
      return h(
        'tr',
        { 'data-workflow-id': s.workflowId },
        h('td', {}, h('strong', {}, s.nhiId), h('br'), ctx.workflowLink(s.workflowId)),
        h('td', {}, badge(s.state)),
        h('td', {}, readback),
        h('td', {}, s.requestedBy),
        h('td', {}, s.changeId ?? '—'),
        h('td', {}, timer(s.expiresAt)),
        h('td', {}, h('div', { class: 'actions' }, mine && s.state === 'active' ? [minutes, extend] : null, canEnd ? done : null)),
      );
    });
    const windows = new Map<string, JitStatus[]>();
    for (const s of list) if (s.changeId) windows.set(s.changeId, [...(windows.get(s.changeId) ?? []), s]);
    const windowRows = [...windows].map(([changeId, items]) => {
      const close = h('button', { type: 'button', class: 'danger', 'data-action': 'close-window' }, 'Close window');
      close.addEventListener('click', () => ctx.act(close, `Close ${changeId}`, () => ctx.api.postChangeWindowsByChangeIdClose(changeId, { reason: 'closed from the console' })));
      return h('tr', { 'data-change-id': changeId }, h('td', {}, changeId), h('td', {}, items.map((i) => i.nhiId).join(', ')), h('td', {}, String(items.length)), h('td', {}, ctx.has('deployer') ? close : null));
    });
    return [
      h('section', { class: 'card', id: 'active-elevations' }, h('h2', {}, 'Open elevations'), table(['NHI', 'state', 'read back', 'requested by', 'change', 'expires', ''], rows, 'No open elevation.')),
      h('section', { class: 'card', id: 'change-windows' }, h('h2', {}, 'Change windows'), table(['change id', 'NHIs', 'elevations', ''], windowRows, 'No open change window.')),
    ];
  },
};
