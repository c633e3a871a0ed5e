-- Screening before training (issue 12): merge may quarantine a source by
-- itself (actor `screening`) with the evidence and the run that found it;
-- an operator releases a rule with an audited, append-only release row; a
-- training set records what screening left out, so train rebuilds it.

-- The run whose screening made the rule (NULL: an operator's rule) and the
-- evidence it acted on (counts, shares, thresholds, reference).
ALTER TABLE feedback_quarantines
    ADD COLUMN run_id uuid REFERENCES runs (id),
    ADD COLUMN evidence jsonb;

-- A release ends a rule for every training set merged afterwards. Sets
-- merged before keep the rule ids they recorded, so they still rebuild.
CREATE TABLE quarantine_releases (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quarantine_id bigint NOT NULL UNIQUE REFERENCES feedback_quarantines (id),
    model_id      integer NOT NULL REFERENCES models (id),
    reason        text NOT NULL CHECK (reason <> ''),
    actor         text NOT NULL CHECK (actor <> ''),
    released_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER quarantine_releases_append_only BEFORE UPDATE OR DELETE ON quarantine_releases
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();

-- `rules` NULL now means every rule in force (not released); a list still
-- means exactly the listed rules, released or not.
CREATE OR REPLACE FUNCTION feedback_quarantined_under(f feedback, rules bigint[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM feedback_quarantines q
        WHERE q.model_id = f.model_id
          AND (CASE WHEN rules IS NULL
                    THEN NOT EXISTS (SELECT 1 FROM quarantine_releases r WHERE r.quarantine_id = q.id)
                    ELSE q.id = ANY (rules) END)
          AND (q.source IS NULL OR q.source = f.source)
          AND (q.received_from IS NULL OR f.received_at >= q.received_from)
          AND (q.received_until IS NULL OR f.received_at < q.received_until)
    )
$$;

-- What screening left out of a training set: feedback ids by reason
-- ({"conflicting_labels": [..], "screened_disagreement": [..]}), and its
-- report (per source: rows sent, rows flagged, share; the reference share
-- and the sources quarantined). NULL for sets merged before screening.
ALTER TABLE training_sets
    ADD COLUMN screened_out jsonb,
    ADD COLUMN screening jsonb;

-- One row per source per screened run: what an auditor asks first.
CREATE VIEW screening_reports AS
SELECT ts.model_id, ts.run_id, ts.id AS training_set_id, s.source,
       (s.report ->> 'rows_sent')::integer AS rows_sent,
       (s.report ->> 'rows_flagged')::integer AS rows_flagged,
       (s.report ->> 'flagged_share')::double precision AS flagged_share,
       (ts.screening ->> 'reference_share')::double precision AS reference_share,
       (s.report ->> 'quarantined')::boolean AS quarantined
FROM training_sets ts,
     jsonb_each(ts.screening -> 'sources') AS s(source, report)
WHERE ts.screening IS NOT NULL;
