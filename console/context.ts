// What every view gets: the API client as the signed-in principal, who that is, and one way to run
// an action (button disabled while it runs, the API's own message shown when it fails).
import { ApiClient, ApiError, type Principal } from './api-client.js';
import { h, replace } from './dom.js';

export interface Settings {
  temporalUiUrl: string | null;
  namespace: string;
  demo: boolean;
}

export interface Ctx {
  api: ApiClient;
  me: Principal;
  settings: Settings;
  has(...roles: Principal['roles']): boolean;
  /** Run an action from a button; refreshes the current view afterwards. */
  act(button: HTMLButtonElement, label: string, fn: () => Promise<unknown>): Promise<void>;
  refresh(): void;
  workflowLink(workflowId: string): HTMLElement;
}

export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const issues = err.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    return `${err.status} ${err.code}: ${err.message}${issues ? ` (${issues})` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The one message line under the header: what the last action did, or the API's error. */
export function notify(text: string, kind: 'ok' | 'error'): void {
  const box = document.getElementById('notice');
  if (!box) return;
  box.className = `notice ${kind}`;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  replace(box, text);
}

export function createCtx(api: ApiClient, me: Principal, settings: Settings, refresh: () => void): Ctx {
  return {
    api,
    me,
    settings,
    refresh,
    has: (...roles) => me.roles.includes('admin') || roles.some((r) => me.roles.includes(r)),
    async act(button, label, fn) {
      button.disabled = true;
      try {
        const answer = (await fn()) as { status?: number; body?: { state?: string; status?: string; id?: string } } | undefined;
        const state = answer?.body?.state ?? answer?.body?.status;
        notify(`${label}: ${[answer?.body?.id, state].filter(Boolean).join(' ') || 'done'}${answer?.status === 202 && answer.body?.state ? ' (still under way)' : ''}`, 'ok');
      } catch (err) {
        notify(`${label} failed: ${describeError(err)}`, 'error');
      } finally {
        button.disabled = false;
        refresh();
      }
    },
    workflowLink(workflowId) {
      if (!settings.temporalUiUrl) return h('code', {}, workflowId);
      const url = `${settings.temporalUiUrl}/namespaces/${encodeURIComponent(settings.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
      return h('a', { href: url, target: '_blank', rel: 'noopener', class: 'wf-link' }, workflowId);
    },
  };
}
