// The console's entry: sign-in, the four tabs, and live updates by polling the current tab's data
// (redrawn only when it changed; what was typed into a field survives the redraw).
import { createCtx, describeError, notify, type Ctx, type Settings } from './context.js';
import { h, replace, tickCountdowns } from './dom.js';
import { currentSession, renderSignIn, signOut } from './session.js';
import { activeView } from './views/active.js';
import { incidentsView } from './views/incidents.js';
import { inventoryView } from './views/inventory.js';
import { needsMeView } from './views/needs-me.js';

export interface View<T> {
  id: string;
  load(ctx: Ctx): Promise<T>;
  draw(ctx: Ctx, data: T): Node[];
}

const POLL_MS = 2500;
const VIEWS: View<any>[] = [needsMeView, activeView, incidentsView, inventoryView];

async function main(): Promise<void> {
  const main = document.getElementById('main') as HTMLElement;
  const settings = (await (await fetch('./settings.json')).json()) as Settings;
  const session = await currentSession();
  if (!session) return renderSignIn(main, settings);

  const tabs = document.getElementById('tabs') as HTMLElement;
  tabs.hidden = false;
  replace(
    document.getElementById('whoami') as HTMLElement,
    h('span', { id: 'signed-in-as', 'data-principal': session.me.id }, `${session.me.id} (${session.me.roles.join(', ') || 'no roles'})`),
    ' ',
    h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out'),
  );

  let last = '';
  let running = false;
  let again = false;
  const current = () => VIEWS.find((v) => `#${v.id}` === location.hash) ?? VIEWS[0];
  const ctx = createCtx(session.api, session.me, settings, () => void refresh());

  async function refresh(force = false): Promise<void> {
    if (running) {
      again = true;
      return;
    }
    running = true;
    const view = current();
    try {
      const data = await view.load(ctx);
      const key = `${view.id}\n${JSON.stringify(data)}`;
      if (force || key !== last) {
        last = key;
        const typed = typedValues(main);
        replace(main, h('div', { id: `view-${view.id}`, class: 'view' }, view.draw(ctx, data)));
        restoreTyped(main, typed);
      }
      replace(document.getElementById('updated') as HTMLElement, `updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      notify(`Loading ${view.id} failed: ${describeError(err)}`, 'error');
    } finally {
      running = false;
      for (const a of tabs.querySelectorAll('a')) a.classList.toggle('current', a.dataset.tab === current().id);
      if (again) {
        again = false;
        void refresh();
      }
    }
  }

  window.addEventListener('hashchange', () => void refresh(true));
  setInterval(() => void refresh(), POLL_MS);
  setInterval(tickCountdowns, 1000);
  await refresh(true);
}

void main();

/** What people typed into the view's fields (by their label), so a redraw of changed data keeps it. */
function typedValues(root: HTMLElement): { values: Map<string, string>; focused?: string } {
  const keyOf = (el: HTMLInputElement | HTMLTextAreaElement) => el.getAttribute('aria-label') ?? el.id ?? el.name;
  const values = new Map<string, string>();
  for (const el of root.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')) {
    const key = keyOf(el);
    if (key && el.value !== el.defaultValue) values.set(key, el.value);
  }
  const active = document.activeElement;
  const focused = active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement ? keyOf(active) : undefined;
  return { values, focused: focused || undefined };
}

function restoreTyped(root: HTMLElement, typed: { values: Map<string, string>; focused?: string }): void {
  for (const el of root.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')) {
    const key = el.getAttribute('aria-label') ?? el.id ?? el.name;
    if (!key) continue;
    const value = typed.values.get(key);
    if (value !== undefined) el.value = value;
    if (key === typed.focused) el.focus();
  }
}
