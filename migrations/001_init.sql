-- Orchestrator state. One schema, owned by the orchestrator; the estate lives elsewhere.

CREATE TABLE nhis (
  id              text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{1,62}$'),
  kind            text NOT NULL CHECK (kind IN ('service_account','api_key','token','integration','ai_agent')),
  owner           text NOT NULL,
  connector       text NOT NULL,
  external_ref    text NOT NULL,
  criticality     text NOT NULL DEFAULT 'medium' CHECK (criticality IN ('low','medium','high','critical')),
  tags            text[] NOT NULL DEFAULT '{}',
  usage_baseline  double precision,               -- expected events per minute
  dependents      jsonb NOT NULL DEFAULT '[]',
  exposure_hints  jsonb NOT NULL DEFAULT '[]',    -- [{repository, secretType}] for leak alerts
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active','throttled','offboarding','offboarded')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (connector, external_ref)
);

CREATE TABLE principals (
  id           text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$'),
  roles        text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  principal_id  text NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
  token_sha256  text NOT NULL UNIQUE,             -- the token itself is never stored
  label         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz
);

-- Append-only, hash-chained. (workflow_id, step_id) makes a retried activity's write a no-op.
CREATE TABLE audit_events (
  seq          bigserial PRIMARY KEY,
  id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  at           timestamptz NOT NULL DEFAULT now(),
  workflow_id  text NOT NULL,
  step_id      text NOT NULL,
  scenario     text,
  nhi_id       text,
  actor        text NOT NULL,
  action       text NOT NULL,
  outcome      text NOT NULL,
  decision     jsonb,
  target       jsonb,
  readback     jsonb,
  details      jsonb NOT NULL DEFAULT '{}',
  prev_hash    text NOT NULL UNIQUE,            -- a fork of the chain is impossible
  hash         text NOT NULL UNIQUE,
  UNIQUE (workflow_id, step_id)
);
CREATE INDEX audit_events_nhi ON audit_events (nhi_id, seq);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only';
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Who holds which entitlement on which NHI, through which workflow. The target is revoked only
-- when the last holder releases.
CREATE TABLE grants (
  nhi_id       text NOT NULL REFERENCES nhis(id),
  entitlement  text NOT NULL,
  holder       text NOT NULL,                     -- workflow id
  granted_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  released_at  timestamptz,
  PRIMARY KEY (nhi_id, entitlement, holder)
);
CREATE INDEX grants_active ON grants (nhi_id, entitlement) WHERE released_at IS NULL;

CREATE TABLE incidents (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind         text NOT NULL,                     -- leak | anomaly | escalation
  status       text NOT NULL CHECK (status IN ('unmatched','open','contained','escalated','closed','resolved')),
  nhi_id       text REFERENCES nhis(id),
  source       text NOT NULL,
  severity     text NOT NULL DEFAULT 'high',
  fingerprint  text,
  workflow_id  text,
  details      jsonb NOT NULL DEFAULT '{}',
  timeline     jsonb NOT NULL DEFAULT '[]',
  created_at   timestamptz NOT NULL DEFAULT now(),
  closed_at    timestamptz
);
CREATE INDEX incidents_status ON incidents (status, created_at);
CREATE INDEX incidents_nhi ON incidents (nhi_id, created_at);

-- Issued credentials, encrypted with AES-256-GCM. Only references and fingerprints leave the store.
CREATE TABLE secrets (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  nhi_id       text NOT NULL REFERENCES nhis(id),
  version      integer NOT NULL,
  status       text NOT NULL CHECK (status IN ('pending','active','retired','discarded','deleted')),
  fingerprint  text NOT NULL,                     -- sha256 hex of the value
  iv           bytea,
  auth_tag     bytea,
  ciphertext   bytea,                             -- NULL once deleted
  created_at   timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  retired_at   timestamptz,
  UNIQUE (nhi_id, version)
);
CREATE UNIQUE INDEX secrets_one_active ON secrets (nhi_id) WHERE status = 'active';
CREATE INDEX secrets_fingerprint ON secrets (fingerprint);

-- Usage signals, bucketed per NHI per minute (upserted, never a row per event).
CREATE TABLE usage_buckets (
  nhi_id   text NOT NULL REFERENCES nhis(id),
  minute   timestamptz NOT NULL,
  count    bigint NOT NULL CHECK (count >= 0),
  PRIMARY KEY (nhi_id, minute)
);

-- Webhook redelivery dedupe and API idempotency keys.
CREATE TABLE webhook_deliveries (
  source       text NOT NULL,
  delivery_id  text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  outcome      jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (source, delivery_id)
);

CREATE TABLE idempotency_keys (
  principal_id  text NOT NULL,
  key           text NOT NULL,
  scope         text NOT NULL,
  request_hash  text NOT NULL,
  response      jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (principal_id, scope, key)
);
