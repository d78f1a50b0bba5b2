-- One statement appends an audit row (lib/audit.ts appendAudit): the chain lock, the retry check,
-- the previous row's hash, the new row's hash and the insert all run here, so the lock every writer
-- queues on is held for no client round trip (it was held for four). The format does not change: the
-- hash is the same sha256 over the same canonical JSON (lib/audit.ts hashEvent); the client sends that
-- JSON in three pieces around the two values only known under the lock, the row's time (to the
-- millisecond, as JavaScript's toISOString writes it) and the previous row's hash.
CREATE OR REPLACE FUNCTION audit_append(
  p_lock bigint,
  p_genesis text,
  p_workflow_id text,
  p_step_id text,
  p_scenario text,
  p_nhi_id text,
  p_actor text,
  p_action text,
  p_outcome text,
  p_decision jsonb,
  p_target jsonb,
  p_readback jsonb,
  p_details jsonb,
  p_before_at text,
  p_before_prev text,
  p_after_prev text
) RETURNS SETOF audit_events LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_at timestamptz;
  v_prev text;
BEGIN
  -- Each statement below takes a fresh snapshot (VOLATILE, READ COMMITTED): it sees the row the
  -- previous holder of the lock committed.
  PERFORM pg_advisory_xact_lock(p_lock);
  RETURN QUERY SELECT * FROM audit_events WHERE workflow_id = p_workflow_id AND step_id = p_step_id;
  IF FOUND THEN
    RETURN; -- a retry of the same step: the row already written
  END IF;
  SELECT hash INTO v_prev FROM audit_events ORDER BY seq DESC LIMIT 1;
  v_prev := coalesce(v_prev, p_genesis);
  v_at := date_trunc('milliseconds', clock_timestamp());
  RETURN QUERY
    INSERT INTO audit_events (at, workflow_id, step_id, scenario, nhi_id, actor, action, outcome, decision, target, readback, details, prev_hash, hash)
    VALUES (v_at, p_workflow_id, p_step_id, p_scenario, p_nhi_id, p_actor, p_action, p_outcome, p_decision, p_target, p_readback, p_details, v_prev,
      encode(sha256(convert_to(
        p_before_at || '"' || to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"' || p_before_prev || '"' || v_prev || '"' || p_after_prev,
        'UTF8')), 'hex'))
    RETURNING *;
END;
$$;
