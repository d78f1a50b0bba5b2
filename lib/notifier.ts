// Webhook notifier: JSON POST to configured URLs, HMAC-SHA256 signed, with a Slack-compatible
// `text`. Called from an activity, so Temporal retries a failed delivery.
import { createHmac } from 'node:crypto';

export interface Notification {
  /** Stable id (workflow id + step) so receivers can drop duplicate deliveries of a retry. */
  id: string;
  kind: string; // e.g. jit.granted, leak.contained, escalation
  severity: 'info' | 'warning' | 'critical';
  text: string; // one line for Slack and humans
  nhiId?: string;
  workflowId?: string;
  details?: Record<string, unknown>;
}

export interface Notifier {
  notify(n: Notification): Promise<{ delivered: number }>;
}

export function signBody(secret: string, body: string, timestamp: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export class WebhookNotifier implements Notifier {
  constructor(
    private readonly urls: string[],
    private readonly secret: string | undefined,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly timeoutMs = 5000,
  ) {}

  async notify(n: Notification): Promise<{ delivered: number }> {
    const body = JSON.stringify({ ...n, sentAt: new Date().toISOString() });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const failures: string[] = [];
    await Promise.all(
      this.urls.map(async (url) => {
        const headers: Record<string, string> = { 'content-type': 'application/json', 'x-nhi-delivery': n.id, 'x-nhi-timestamp': timestamp };
        if (this.secret) headers['x-nhi-signature-256'] = signBody(this.secret, body, timestamp);
        try {
          const res = await this.fetchImpl(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
          if (!res.ok) failures.push(`${new URL(url).host}: HTTP ${res.status}`);
        } catch (err) {
          failures.push(`${new URL(url).host}: ${(err as Error).message}`);
        }
      }),
    );
    // Throwing makes the activity retry; receivers dedupe on x-nhi-delivery.
    if (failures.length) throw new Error(`notification ${n.id} not delivered to ${failures.join('; ')}`);
    return { delivered: this.urls.length };
  }
}

/** Keeps notifications in memory (dev without webhook URLs, and tests). */
export class MemoryNotifier implements Notifier {
  readonly sent: Notification[] = [];
  async notify(n: Notification) {
    this.sent.push(n);
    return { delivered: 1 };
  }
}

/** Dev without webhook URLs: notifications go to the log (they carry no secrets). */
export class LogNotifier implements Notifier {
  constructor(private readonly log: (n: Notification) => void) {}
  async notify(n: Notification) {
    this.log(n);
    return { delivered: 0 };
  }
}
