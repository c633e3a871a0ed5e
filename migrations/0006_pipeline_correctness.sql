-- Pipeline correctness (issue 10): which feedback counts, a commit-order
-- safe watermark, and training sets that can be rebuilt exactly.

-- One predicate for "this rule covers this row", used by every question
-- about quarantine: the threshold, the backlog gauge and merge.
-- `rules` NULL means every rule stored now; otherwise only the listed rules
-- (a training set records the rules it was merged under, and rules are
-- append-only, so the same list always excludes the same rows).
CREATE FUNCTION feedback_quarantined_under(f feedback, rules bigint[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM feedback_quarantines q
        WHERE (rules IS NULL OR q.id = ANY (rules))
          AND (q.source IS NULL OR q.source = f.source)
          AND (q.received_from IS NULL OR f.received_at >= q.received_from)
          AND (q.received_until IS NULL OR f.received_at < q.received_until)
    )
$$;

-- Feedback that counts toward a run: ids in (after, upto], not quarantined
-- by any rule stored now. The threshold check, the backlog gauge (through
-- feedback_waiting) and collect all count with this, and merge leaves out
-- the same rows through the same predicate.
CREATE FUNCTION feedback_counted_between(after bigint, upto bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM feedback f
    WHERE f.id > after AND f.id <= upto
      AND NOT (EXISTS (SELECT 1 FROM feedback_quarantines) AND feedback_quarantined_under(f, NULL))
$$;

-- Feedback that counts and waits for the next run that passes collect.
CREATE FUNCTION feedback_waiting() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT feedback_counted_between(
        (SELECT coalesce(max(watermark), 0) FROM collections WHERE passed),
        9223372036854775807)
$$;

-- The older name, kept for the audit views and ad hoc queries, now says the
-- same thing through the one predicate.
CREATE OR REPLACE FUNCTION feedback_is_quarantined(f feedback) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT feedback_quarantined_under(f, NULL)
$$;

-- The quarantine rules a training set was merged under (NULL for sets
-- recorded before this column existed: every rule of their time).
ALTER TABLE training_sets ADD COLUMN quarantine_rules bigint[];

-- A commit-order safe watermark. Feedback ids come from a sequence, so a
-- transaction can draw a lower id and commit after another one's higher id
-- is already visible: a collect reading max(id) in between would place the
-- late row at or below its watermark without having counted it. Every
-- statement inserting feedback therefore holds this advisory lock shared
-- until it commits, taken before any id is drawn (a BEFORE ... FOR EACH
-- STATEMENT trigger fires before the rows, and their defaults, are
-- produced); collect takes it exclusively before reading max(id). So every
-- id at or below a watermark is committed or rolled back when the
-- watermark is read, and ids drawn later are above it.
CREATE FUNCTION feedback_hold_watermark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('retrain.collect'));
    RETURN NULL;
END $$;

CREATE TRIGGER feedback_hold_watermark BEFORE INSERT ON feedback
    FOR EACH STATEMENT EXECUTE FUNCTION feedback_hold_watermark();
