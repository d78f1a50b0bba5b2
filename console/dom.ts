// Small DOM helpers: elements are built with text nodes only (never innerHTML), so no value from
// the API can become markup; times and countdowns in one place.
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

/** h('button', { class: 'primary', onclick: go }, 'Approve') */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function replace(target: Element, ...children: (Child | Child[])[]): void {
  target.replaceChildren(...children.flat().filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false).map((c) => (c instanceof Node ? c : String(c))));
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** "12m 05s left", "6d 23h 59m left", "3m 10s ago": recomputed on every tick by elements marked data-until. */
export function countdown(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const ms = Date.parse(iso) - now;
  const abs = Math.abs(ms);
  const days = Math.floor(abs / 86_400_000);
  const hours = Math.floor((abs % 86_400_000) / 3_600_000);
  const mins = Math.floor((abs % 3_600_000) / 60_000);
  const secs = Math.floor((abs % 60_000) / 1000);
  // Seconds matter for minutes-long windows; a grace period of days reads better without them.
  const text = days ? `${days}d ${hours}h ${mins}m` : `${hours ? `${hours}h ` : ''}${mins}m ${String(secs).padStart(2, '0')}s`;
  return ms >= 0 ? `${text} left` : `${text} ago`;
}

export function timer(iso: string | null | undefined): HTMLElement {
  return h('span', { class: 'countdown', 'data-until': iso ?? '' }, countdown(iso));
}

/** Refresh every countdown on the page (once a second; the data itself is polled less often). */
export function tickCountdowns(): void {
  for (const el of document.querySelectorAll<HTMLElement>('[data-until]')) el.textContent = countdown(el.dataset.until);
}

export function badge(state: string | null | undefined): HTMLElement {
  return h('span', { class: `badge state-${state ?? 'unknown'}`, 'data-state': state ?? '' }, state ?? 'unknown');
}

export function table(headers: string[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))), h('tbody', {}, rows));
}
