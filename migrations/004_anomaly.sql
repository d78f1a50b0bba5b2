-- Anomaly throttling (issue #6). Additive only.

-- The detector's per-NHI state: an EWMA of events per minute and of its variance over closed
-- minutes, folded incrementally on ingest (lib/anomaly-detector.ts). through_minute NULL: no state yet.
CREATE TABLE usage_baselines (
  nhi_id             text PRIMARY KEY REFERENCES nhis(id),
  mean               double precision NOT NULL DEFAULT 0,
  variance           double precision NOT NULL DEFAULT 0,
  samples            integer NOT NULL DEFAULT 0,
  through_minute     timestamptz,
  last_alert_minute  timestamptz,              -- one signal per NHI per minute
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- What the Postgres collector added to usage_buckets, once per (NHI, minute): a retried or
-- overlapping collector run never counts a minute twice.
CREATE TABLE usage_collections (
  nhi_id      text NOT NULL REFERENCES nhis(id),
  minute      timestamptz NOT NULL,
  count       bigint NOT NULL CHECK (count >= 0),
  detail      jsonb NOT NULL DEFAULT '{}',
  sampled_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (nhi_id, minute)
);
