// A small client for the OpenBao / HashiCorp Vault HTTP API (the same on both): a token, or an
// AppRole login that is renewed by logging in again when the token is refused. Names as the Vault
// CLI uses them: VAULT_ADDR, VAULT_NAMESPACE, VAULT_TOKEN (and the AppRole's role id / secret id).
// Values never appear in errors: a failure names the method, the path and Vault's status and errors.

export type VaultAuth = { token: string } | { roleId: string; secretId: string; mount?: string };

export interface VaultOptions {
  addr: string;
  namespace?: string;
  auth: VaultAuth;
}

export class VaultError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errors: string[],
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export class VaultClient {
  private token?: string;

  constructor(private readonly options: VaultOptions) {
    if ('token' in options.auth) this.token = options.auth.token;
  }

  get addr(): string {
    return this.options.addr;
  }

  private async login(): Promise<string> {
    const auth = this.options.auth;
    if ('token' in auth) return auth.token;
    const out = await this.raw('POST', `auth/${auth.mount ?? 'approle'}/login`, { role_id: auth.roleId, secret_id: auth.secretId }, undefined);
    const token = (out.body as { auth?: { client_token?: string } })?.auth?.client_token;
    if (out.status !== 200 || !token) throw new VaultError(`Vault AppRole login failed (${out.status})`, out.status, errorsOf(out.body));
    this.token = token;
    return token;
  }

  private async raw(method: string, path: string, body: unknown, token: string | undefined): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers['X-Vault-Token'] = token;
    if (this.options.namespace) headers['X-Vault-Namespace'] = this.options.namespace;
    const res = await fetch(`${this.options.addr.replace(/\/$/, '')}/v1/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    return { status: res.status, body: parsed };
  }

  /**
   * One call; 404 answers null (nothing there), other failures throw. With an AppRole, a refused
   * token (403) logs in again once.
   */
  async request<T = any>(method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST', path: string, body?: unknown): Promise<T | null> {
    let token = this.token ?? (await this.login());
    let out = await this.raw(method, path, body, token);
    if (out.status === 403 && !('token' in this.options.auth)) {
      token = await this.login();
      out = await this.raw(method, path, body, token);
    }
    if (out.status === 404) return null;
    if (out.status >= 400) throw new VaultError(`Vault ${method} ${path}: ${out.status} ${errorsOf(out.body).join('; ')}`, out.status, errorsOf(out.body));
    return (out.body ?? {}) as T;
  }

  /** Log in with an AppRole's ids, without keeping the token: the status and Vault's errors (a probe). */
  async tryAppRoleLogin(roleId: string, secretId: string, mount = 'approle'): Promise<{ status: number; errors: string[]; token?: string; accessor?: string }> {
    const out = await this.raw('POST', `auth/${mount}/login`, { role_id: roleId, secret_id: secretId }, undefined);
    const auth = (out.body as { auth?: { client_token?: string; accessor?: string } })?.auth;
    return { status: out.status, errors: errorsOf(out.body), token: auth?.client_token, accessor: auth?.accessor };
  }
}

function errorsOf(body: unknown): string[] {
  const errors = (body as { errors?: unknown })?.errors;
  return Array.isArray(errors) ? errors.map(String) : [];
}
