// The drift check's contract: its type name and result (the schedule and tests import this, never the workflow).
export const DRIFT_RECONCILER_WORKFLOW_TYPE = 'driftReconciler';

export interface DriftCheckResult {
  checked: number;
  inSync: number;
  baselineCaptured: string[];
  reverted: string[];
  reported: string[];
  errors: { nhiId: string; error: string }[];
}
