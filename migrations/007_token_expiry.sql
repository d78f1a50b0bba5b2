-- API tokens expire (issue 13): every token gets an end, 90 days by default (`nhi token create --ttl`).
-- Tokens issued before this migration get 90 days from their creation, like new ones.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
UPDATE api_tokens SET expires_at = created_at + interval '90 days' WHERE expires_at IS NULL;
ALTER TABLE api_tokens ALTER COLUMN expires_at SET DEFAULT now() + interval '90 days';
ALTER TABLE api_tokens ALTER COLUMN expires_at SET NOT NULL;
