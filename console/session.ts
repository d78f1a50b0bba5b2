// Sign-in: an API token kept in sessionStorage (gone when the tab closes), checked with GET /v1/me.
// In dev the server offers the demo principals (loopback only) as a picker.
import { ApiClient, type Principal } from './api-client.js';
import type { Settings } from './context.js';
import { h, replace } from './dom.js';
import { describeError } from './context.js';

const KEY = 'nhi-console-token';

export async function currentSession(): Promise<{ api: ApiClient; me: Principal } | null> {
  const token = sessionStorage.getItem(KEY);
  if (!token) return null;
  try {
    const api = new ApiClient(token);
    return { api, me: (await api.getMe()).body };
  } catch {
    sessionStorage.removeItem(KEY);
    return null;
  }
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  location.reload();
}

async function signIn(token: string, error: HTMLElement): Promise<void> {
  try {
    await new ApiClient(token).getMe();
    sessionStorage.setItem(KEY, token);
    location.reload();
  } catch (err) {
    replace(error, `Sign-in failed: ${describeError(err)}`);
  }
}

export async function renderSignIn(root: HTMLElement, settings: Settings): Promise<void> {
  const error = h('p', { class: 'notice error', id: 'signin-error', role: 'alert' });
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'API token', 'aria-label': 'API token' });
  const form = h(
    'form',
    { class: 'signin', id: 'signin-form', onsubmit: (e: Event) => (e.preventDefault(), void signIn(input.value.trim(), error)) },
    h('label', { for: 'token' }, 'API token'),
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  const picker = h('div', { class: 'picker', id: 'demo-picker' });
  replace(root, h('section', { class: 'card' }, h('h2', {}, 'Sign in'), h('p', {}, 'Paste a token (`npx nhi token create --principal <id> --roles <roles>`).'), form, picker, error));
  if (!settings.demo) return;
  try {
    const res = await fetch('./demo-principals.json');
    if (!res.ok) return;
    const { principals } = (await res.json()) as { principals: { id: string; roles: string[]; token: string }[] };
    replace(
      picker,
      h('h3', {}, 'Demo principals'),
      principals.map((p) => h('button', { type: 'button', class: 'principal', 'data-principal': p.id, onclick: () => void signIn(p.token, error) }, `${p.id} (${p.roles.join(', ')})`)),
    );
  } catch {
    // no picker: the token form still works
  }
}
