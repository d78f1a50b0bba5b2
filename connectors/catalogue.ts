// What connectors with configured entitlements (logical name → write-capable?, read-only form)
// share: sorted names, and the catalogue the desired-access rule reads.
import type { EntitlementCatalogue } from './types';

export const sortNames = (xs: Iterable<string>) => [...new Set(xs)].sort();

export interface ConfiguredEntitlement {
  writeCapable?: boolean;
  /** The entitlement with the same read access and no writes (a throttle keeps it). */
  readOnlyForm?: string;
}

/** A read-only form counts only when it is configured itself and is not write-capable. */
export function catalogueOf(entitlements: ReadonlyMap<string, ConfiguredEntitlement>): EntitlementCatalogue {
  const grantable = sortNames(entitlements.keys());
  const writeCapable = grantable.filter((e) => entitlements.get(e)!.writeCapable);
  const readOnlyForm = Object.fromEntries(
    writeCapable.flatMap((e) => {
      const r = entitlements.get(e)!.readOnlyForm;
      return r && entitlements.has(r) && !entitlements.get(r)!.writeCapable ? [[e, r]] : [];
    }),
  );
  return { grantable, writeCapable, readOnlyForm };
}
