/** A Temporal visibility-query string literal (ids are slugs already; this keeps it safe regardless). */
export const visibilityLiteral = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
