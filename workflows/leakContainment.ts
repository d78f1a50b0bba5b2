// Leak containment workflow (issue #4).
export async function leakContainment(): Promise<void> {}
