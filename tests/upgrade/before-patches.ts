// The workflow API as the code before any of today's patches saw it: `patched()` is false and
// records nothing, `deprecatePatch()` does nothing. Bundled in place of '@temporalio/workflow', the
// current workflow code behaves exactly as the build that shipped before its patches (every
// change since then is behind a patch: docs/versioning.md) — the "old worker" of the upgrade test.
export * from '@temporalio/workflow/lib/index';

export function patched(_patchId: string): boolean {
  return false;
}

export function deprecatePatch(_patchId: string): void {}
