-- Credentials a target issues itself (AWS access keys, OpenBao secret-ids). Ids and fingerprints
-- only, never values.

-- The credential ids a target held when a staging first asked it for a new one, recorded before the
-- target is asked: a retried staging tells a credential its crashed attempt made (neither held
-- before nor known to the secret store) from every other, and deletes it before issuing again.
CREATE TABLE credential_issues (
  rotation_id  text PRIMARY KEY,
  nhi_id       text NOT NULL REFERENCES nhis(id),
  held_before  text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Fingerprints of the parts of a stored credential that are found or named alone: the secret half
-- of an AWS access key (what a scanner hashes) and the credential's id (an access key id, a
-- secret-id accessor: what AWS's exposure alerts name, and how a staging knows the store holds a
-- key). The whole value's fingerprints stay in secrets.fingerprint / secrets.hmsl.
CREATE TABLE secret_fingerprints (
  secret_id    uuid NOT NULL REFERENCES secrets(id),
  part         text NOT NULL CHECK (part IN ('secret', 'credential_id')),
  kind         text NOT NULL CHECK (kind IN ('sha256', 'hmsl')),
  fingerprint  text NOT NULL,
  PRIMARY KEY (secret_id, part, kind)
);
CREATE INDEX secret_fingerprints_fingerprint ON secret_fingerprints (fingerprint);
