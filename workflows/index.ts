// Every workflow the worker registers (this module is the bundle's entry point).
export { jitElevation } from '../scenarios/jit/workflow';
export { leakContainment } from '../scenarios/leak/workflow';
export { offboarding } from '../scenarios/offboarding/workflow';
export { anomalyThrottling } from '../scenarios/anomaly/workflow';
export { usageCollector } from '../scenarios/anomaly/usage-collector';
export { driftReconciler } from '../enforcement/drift-workflow';
