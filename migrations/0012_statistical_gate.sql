-- The statistical gate (issue 12): the gate decides by a one-sided
-- non-inferiority bound rather than a point comparison, and checks the
-- candidate on a second set, the model's recent set (a hash-chosen share of
-- feedback held out of training).

-- The share of feedback held out when the set was merged, so a rebuild
-- holds out the same rows after the setting changes (NULL: none, as every
-- set merged before this release).
ALTER TABLE training_sets ADD COLUMN recent_share double precision;

-- Which set an evaluation is on: the data set's golden rows or the model's
-- recent set. A run stores each role once per set.
CREATE TYPE evaluation_set AS ENUM ('golden', 'recent');
ALTER TABLE evaluations ADD COLUMN eval_set evaluation_set NOT NULL DEFAULT 'golden';
ALTER TABLE evaluations DROP CONSTRAINT evaluations_run_id_role_key;
ALTER TABLE evaluations ADD CONSTRAINT evaluations_run_id_role_set_key UNIQUE (run_id, role, eval_set);

-- The decision in words and the numbers behind it (NULL in verdicts
-- recorded before this release, and the bounds without a champion).
ALTER TABLE validations
    ADD COLUMN decision text,
    ADD COLUMN golden_lower_bound double precision,
    ADD COLUMN recent_lower_bound double precision,
    ADD COLUMN recent_rows integer,
    ADD COLUMN margin double precision,
    ADD COLUMN alpha double precision;

-- The audit views read golden figures only.
CREATE OR REPLACE VIEW audit_model_lineage AS
SELECT mo.name           AS model,
       m.version,
       m.id              AS version_id,
       m.kind,
       m.sha256,
       m.created_at      AS trained_at,
       m.run_id,
       r.trigger         AS run_trigger,
       r.requested_by    AS run_requested_by,
       d.name            AS dataset,
       d.version         AS dataset_version,
       ts.feedback_from,
       ts.feedback_to,
       ts.base_rows,
       ts.feedback_rows,
       ts.total_rows,
       ts.dropped,
       ts.content_sha256 AS training_set_sha256,
       m.hyperparams,
       m.training_ms,
       ev.accuracy       AS golden_accuracy,
       ev.macro_f1       AS golden_macro_f1,
       v.passed          AS gate_passed,
       p.promoted_at     AS first_promoted_at,
       p.actor           AS first_promoted_by,
       (m.id = (SELECT c.version_id FROM champion c WHERE c.model_id = m.model_id)) AS is_champion
FROM versions m
JOIN models mo ON mo.id = m.model_id
JOIN training_sets ts ON ts.id = m.training_set_id
JOIN datasets d ON d.id = ts.dataset_id
LEFT JOIN runs r ON r.id = m.run_id
LEFT JOIN validations v ON v.run_id = m.run_id
LEFT JOIN LATERAL (
    SELECT e.accuracy, e.macro_f1 FROM evaluations e
    WHERE e.version_id = m.id AND e.eval_set = 'golden'
    ORDER BY (e.run_id IS NOT DISTINCT FROM m.run_id) DESC, e.id
    LIMIT 1
) ev ON true
LEFT JOIN LATERAL (
    SELECT pr.promoted_at, pr.actor FROM promotions pr WHERE pr.version_id = m.id ORDER BY pr.id LIMIT 1
) p ON true;

CREATE OR REPLACE VIEW audit_rejected_runs AS
SELECT r.id                  AS run_id,
       mo.name               AS model,
       r.finished_at,
       r.trigger,
       r.outcome->>'reason'  AS reason,
       cm.version            AS candidate_version,
       ce.accuracy           AS candidate_accuracy,
       chm.version           AS champion_version,
       che.accuracy          AS champion_accuracy,
       (SELECT jsonb_agg(c) FROM jsonb_array_elements(v.checks) c WHERE NOT (c->>'passed')::boolean)
                             AS failed_checks,
       v.comparison
FROM runs r
JOIN validations v ON v.run_id = r.id
JOIN models mo ON mo.id = v.model_id
JOIN versions cm ON cm.id = v.candidate_id
LEFT JOIN versions chm ON chm.id = v.champion_id
LEFT JOIN evaluations ce ON ce.run_id = r.id AND ce.role = 'candidate' AND ce.eval_set = 'golden'
LEFT JOIN evaluations che ON che.run_id = r.id AND che.role = 'champion' AND che.eval_set = 'golden'
WHERE r.status = 'rejected';
