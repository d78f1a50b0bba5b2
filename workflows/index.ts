// Every workflow the worker registers (this module is the bundle's entry point).
export { jitElevation } from './jitElevation';
export { leakContainment } from './leakContainment';
export { offboarding } from './offboarding';
export { anomalyThrottling } from './anomalyThrottling';
export { usageCollector } from './usageCollector';
export { driftReconciler } from './driftReconciler';
