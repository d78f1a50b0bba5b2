// The usage collector, started every minute by a Temporal Schedule: one activity samples the
// estate's live sessions per inventoried identity into usage buckets and runs the detector, which
// starts or joins anomaly throttles. Short and stateless: each run is one activity.
import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { longWithHeartbeat } from '../../workflows/activity-presets';
import type { UsageCollectorInput, UsageCollectorResult } from './contract';
import { checkInputVersion } from '../../workflows/versioning';

const { collectUsage } = proxyActivities<ReturnType<typeof createActivities>>(longWithHeartbeat);

export async function usageCollector(input: UsageCollectorInput): Promise<UsageCollectorResult> {
  checkInputVersion('usageCollector', input?.version, [1]);
  const r = await collectUsage(input);
  setCurrentDetails(
    [
      `sampled ${r.samples.length} identities for ${r.minute}${r.skipped.length ? ` (${r.skipped.length} already sampled)` : ''}`,
      r.anomalies.length ? `anomalies: ${r.anomalies.map((a) => `${a.nhiId} ${a.observedRate}/min${a.error ? ` (${a.error})` : ''}`).join(', ')}` : 'no anomaly',
      r.errors.length ? `errors: ${r.errors.map((e) => `${e.nhiId}: ${e.error}`).join('; ')}` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  return r;
}
