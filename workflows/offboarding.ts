// Offboarding workflow (issue #5).
export async function offboarding(): Promise<void> {}
