// Anomaly throttling workflow (issue #6).
export async function anomalyThrottling(): Promise<void> {}
