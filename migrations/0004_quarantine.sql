-- Quarantine: feedback found poisoned is excluded from training by source or
-- by time received, without rewriting the feedback itself. Rules are
-- append-only, so what any training set excluded stays explainable.

CREATE TABLE feedback_quarantines (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- rows from this source (NULL: any source)
    source         text,
    -- rows received in [received_from, received_until) (NULL: unbounded)
    received_from  timestamptz,
    received_until timestamptz,
    reason         text NOT NULL CHECK (reason <> ''),
    actor          text NOT NULL CHECK (actor <> ''),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (source IS NOT NULL OR received_from IS NOT NULL OR received_until IS NOT NULL),
    CHECK (received_from IS NULL OR received_until IS NULL OR received_from < received_until)
);

CREATE TRIGGER feedback_quarantines_append_only BEFORE UPDATE OR DELETE ON feedback_quarantines
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();

-- Whether a feedback row falls under any quarantine rule.
CREATE FUNCTION feedback_is_quarantined(f feedback) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM feedback_quarantines q
        WHERE (q.source IS NULL OR q.source = f.source)
          AND (q.received_from IS NULL OR f.received_at >= q.received_from)
          AND (q.received_until IS NULL OR f.received_at < q.received_until)
    )
$$;
