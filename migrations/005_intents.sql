-- Intents: what each workflow wants for one NHI, in one ledger. The reconciler (enforcement/) is
-- the only code that changes a target, and it derives what to apply from the active intents here.
--   baseline    the NHI's standing access (entitlements, login, connection limit); owner 'baseline'
--   grant       an entitlement a workflow (an elevation) holds, until it releases it
--   restrict    a restriction a workflow holds: throttle (level, connection limit), login_disabled,
--               quarantine, offboarded
CREATE TABLE intents (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  nhi_id       text NOT NULL REFERENCES nhis(id),
  owner        text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('baseline', 'grant', 'restrict')),
  -- grant: the entitlement; restrict: the restriction kind; baseline: ''.
  subject      text NOT NULL,
  params       jsonb NOT NULL DEFAULT '{}',
  until        timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  released_at  timestamptz,
  CHECK (kind <> 'restrict' OR subject IN ('throttle', 'login_disabled', 'quarantine', 'offboarded')),
  CHECK ((kind = 'baseline') = (owner = 'baseline'))
);
-- One active intent per owner and subject: committing the same intent twice is a no-op.
CREATE UNIQUE INDEX intents_active ON intents (nhi_id, owner, kind, subject) WHERE released_at IS NULL;
CREATE INDEX intents_by_owner ON intents (owner) WHERE released_at IS NULL;

-- Elevations that hold access today carry on as grant intents; access they found already there
-- (holder 'standing') becomes part of the baseline when the reconciler first captures it.
INSERT INTO intents (nhi_id, owner, kind, subject, until, created_at)
SELECT nhi_id, holder, 'grant', entitlement, expires_at, granted_at
  FROM grants WHERE released_at IS NULL AND holder <> 'standing';
