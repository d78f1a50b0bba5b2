-- Leak containment (issue #4). Additive only.

-- GitGuardian's HasMySecretLeaked hash of each issued credential (scrypt, see lib/leak-intake.ts),
-- so an incident's hmsl_hash can be matched to the credential without ever holding the value.
ALTER TABLE secrets ADD COLUMN hmsl text;
CREATE INDEX secrets_hmsl ON secrets (hmsl) WHERE hmsl IS NOT NULL;

-- One row per rotation attempt, keyed by an id the workflow chooses: a retried or re-executed
-- step finds the credential it already staged instead of rotating twice.
CREATE TABLE rotations (
  rotation_id   text PRIMARY KEY,
  nhi_id        text NOT NULL REFERENCES nhis(id),
  workflow_id   text NOT NULL,
  incident_id   uuid,
  old_ref       uuid REFERENCES secrets(id),     -- the active version when the rotation began (NULL: none on record)
  new_ref       uuid NOT NULL REFERENCES secrets(id),
  status        text NOT NULL CHECK (status IN ('staged','applied','activated','discarded')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  applied_at    timestamptz,                      -- when the target accepted the new credential
  activated_at  timestamptz
);
CREATE INDEX rotations_nhi ON rotations (nhi_id, created_at);

CREATE INDEX incidents_workflow ON incidents (workflow_id, created_at) WHERE workflow_id IS NOT NULL;
CREATE INDEX incidents_created ON incidents (created_at);
