// Recorded histories for the replay suite (tests/replay). The scenario tests that drive a
// workflow's interesting paths name them here; with RECORD_HISTORIES=1 (`npm run histories:record`)
// each named run's history is written to tests/replay/histories/<name>.json. Otherwise a no-op.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToFileJson } from './history-files';

export const HISTORIES_DIR = path.join(__dirname, '..', 'replay', 'histories');

export const recordingHistories = () => process.env.RECORD_HISTORIES === '1';

/**
 * Keep the history of one run (the latest unless `runId`) as `<name>.json`. Call it once the run has
 * gone through the path it names (a running workflow is fine: replay stops where the history does).
 */
export async function keepHistory(client: Client, name: string, workflowId: string, runId?: string): Promise<void> {
  if (!recordingHistories()) return;
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  mkdirSync(HISTORIES_DIR, { recursive: true });
  writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), historyToFileJson(history) + '\n');
}
