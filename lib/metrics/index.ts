// The API process's Prometheus metrics (GET /metrics, api/metrics.ts): HTTP route latency, the
// domain series read from the audit trail, and workflow counts from Temporal visibility. One
// registry per app, not prom-client's global one, so two apps in one process never share series.
// The Temporal SDK runtime's own metrics (workflow task latency, slots, sticky cache, polls) are a
// separate Prometheus endpoint of the worker's runtime: TEMPORAL_METRICS_ADDRESS (workers/worker.ts).
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { createAuditFeed } from './audit-feed';
import { createWorkflowCounts } from './workflow-counts';

/** A source that does not answer within this long is reported down for this scrape. */
const SOURCE_DEADLINE_MS = 3000;

/** HTTP latency buckets (seconds): most routes answer in milliseconds; starts wait for Temporal. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  registry: Registry;
  observeHttp(labels: { method: string; route: string; status: number }, seconds: number): void;
  /** Refresh the series read from elsewhere (audit trail, visibility), then render the text format. */
  render(): Promise<string>;
  contentType: string;
}

export function createMetrics(deps: { pool: Pool; client: Client; taskQueue: string; processMetrics?: boolean }): Metrics {
  const registry = new Registry();
  // Process series (CPU, heap, event-loop lag) start with the first scrape: an app that is never
  // scraped (most tests build dozens) installs no GC observers.
  let processMetrics = !(deps.processMetrics ?? true);
  const http = new Histogram({
    name: 'nhi_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern (unmatched for anything no route claims) and status',
    labelNames: ['method', 'route', 'status'],
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  const sourceUp = new Gauge({
    name: 'nhi_metrics_source_up',
    help: 'Whether the last scrape could read a source (audit: the orchestrator database; visibility: Temporal)',
    labelNames: ['source'],
    registers: [registry],
  });
  const feed = createAuditFeed(deps.pool, registry);
  const counts = createWorkflowCounts(deps.client, deps.taskQueue, registry);
  // Start the audit cursor now, so what happens before the first scrape is counted too.
  feed.refresh().catch(() => undefined);

  const readSource = async (source: string, refresh: () => Promise<void>) => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${source} did not answer`)), SOURCE_DEADLINE_MS);
    });
    try {
      await Promise.race([refresh(), deadline]);
      sourceUp.set({ source }, 1);
    } catch {
      // The scrape still answers: HTTP and process series do not depend on either source.
      sourceUp.set({ source }, 0);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    observeHttp: ({ method, route, status }, seconds) => http.observe({ method, route, status: String(status) }, seconds),
    async render() {
      if (!processMetrics) {
        processMetrics = true;
        collectDefaultMetrics({ register: registry, prefix: 'nhi_api_' });
      }
      await Promise.all([readSource('audit', () => feed.refresh()), readSource('visibility', () => counts.refresh())]);
      return registry.metrics();
    },
  };
}
