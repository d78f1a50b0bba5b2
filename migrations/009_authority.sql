-- Nonces of signed authorities (lib/authority.ts): each is used by one activity execution only, so
-- a signed message sent again is refused. Rows past their expiry can be deleted at any time.
CREATE TABLE IF NOT EXISTS authority_nonces (
  nonce text PRIMARY KEY,
  workflow_id text NOT NULL,
  message text NOT NULL,
  principal text NOT NULL,
  used_by text NOT NULL,
  used_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS authority_nonces_expires ON authority_nonces (expires_at);
