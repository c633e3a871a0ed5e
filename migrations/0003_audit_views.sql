-- Views that answer an auditor's questions in one SELECT each; docs/audit.md
-- shows the queries. They read only; the tables stay the source of truth.

-- A run's timeline: each step with its attempts, timing and errors.
CREATE VIEW audit_run_timeline AS
SELECT r.id            AS run_id,
       r.pipeline,
       r.status        AS run_status,
       r.trigger,
       r.requested_by,
       r.created_at    AS run_created_at,
       r.finished_at   AS run_finished_at,
       r.outcome->>'reason' AS run_reason,
       s.position,
       s.name          AS step,
       s.status        AS step_status,
       s.attempt       AS attempts,
       ev.first_started_at,
       s.finished_at,
       round(extract(epoch FROM s.finished_at - ev.first_started_at) * 1000)::bigint AS duration_ms,
       coalesce(ev.errors, ARRAY[]::text[]) AS errors
FROM runs r
JOIN steps s ON s.run_id = r.id
LEFT JOIN LATERAL (
    SELECT min(e.at) FILTER (WHERE e.to_status = 'running' AND e.from_status = 'pending') AS first_started_at,
           array_agg(e.reason ORDER BY e.id)
               FILTER (WHERE e.from_status = 'running' AND e.to_status IN ('pending', 'failed')) AS errors
    FROM run_events e
    WHERE e.run_id = s.run_id AND e.step = s.name
) ev ON true;

-- What trained a model, how it measured, and when it first served.
CREATE VIEW audit_model_lineage AS
SELECT m.version,
       m.id              AS model_id,
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
       (m.id = (SELECT model_id FROM champion)) AS is_champion
FROM models m
JOIN training_sets ts ON ts.id = m.training_set_id
JOIN datasets d ON d.id = ts.dataset_id
LEFT JOIN runs r ON r.id = m.run_id
LEFT JOIN validations v ON v.run_id = m.run_id
-- the evaluation made when the model was new: its run's, or bootstrap's
LEFT JOIN LATERAL (
    SELECT e.accuracy, e.macro_f1 FROM evaluations e
    WHERE e.model_id = m.id
    ORDER BY (e.run_id IS NOT DISTINCT FROM m.run_id) DESC, e.id
    LIMIT 1
) ev ON true
LEFT JOIN LATERAL (
    SELECT pr.promoted_at, pr.actor FROM promotions pr WHERE pr.model_id = m.id ORDER BY pr.id LIMIT 1
) p ON true;

-- Who promoted what, when, from which version to which, and why.
CREATE VIEW audit_promotions AS
SELECT p.id          AS promotion_id,
       p.promoted_at,
       p.kind,
       p.actor,
       pm.version    AS from_version,
       m.version     AS to_version,
       p.reason,
       p.run_id
FROM promotions p
JOIN models m ON m.id = p.model_id
LEFT JOIN models pm ON pm.id = p.previous_model_id;

-- Why runs were rejected: the gate's failed checks and the two models' scores.
CREATE VIEW audit_rejected_runs AS
SELECT r.id                  AS run_id,
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
JOIN models cm ON cm.id = v.candidate_id
LEFT JOIN models chm ON chm.id = v.champion_id
LEFT JOIN evaluations ce ON ce.run_id = r.id AND ce.role = 'candidate'
LEFT JOIN evaluations che ON che.run_id = r.id AND che.role = 'champion'
WHERE r.status = 'rejected';
