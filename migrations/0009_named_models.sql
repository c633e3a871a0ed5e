-- Named models (issue 11): many classifiers per service, tabular (named
-- numeric columns) or text (one text field), each with its own data sets,
-- feedback, predictions, runs, versions, golden set, quarantines and audit.
-- What was the `models` table (one trained artifact) is now a version of a
-- model; the single model of earlier releases becomes `wine-quality`, with
-- every version, run, feedback row, promotion and audit row kept.

CREATE TYPE input_kind AS ENUM ('tabular', 'text');

-- The views read columns whose types change below; they are made again,
-- with a model column, at the end.
DROP VIEW audit_run_timeline, audit_model_lineage, audit_promotions, audit_rejected_runs, feedback_links;
DROP FUNCTION feedback_waiting();
DROP FUNCTION feedback_counted_between(bigint, bigint);

ALTER TABLE models RENAME TO versions;
ALTER TABLE evaluations RENAME COLUMN model_id TO version_id;
ALTER TABLE promotions RENAME COLUMN model_id TO version_id;
ALTER TABLE promotions RENAME COLUMN previous_model_id TO previous_version_id;
ALTER TABLE champion RENAME COLUMN model_id TO version_id;
ALTER INDEX evaluations_by_model RENAME TO evaluations_by_version;

CREATE TABLE models (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- lower case letters, digits and . _ -, starting with a letter or digit:
    -- it appears in URLs, metric labels and file names
    name          text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    kind          input_kind NOT NULL,
    -- tabular: the feature columns, in the order the model reads them
    -- (none until its first data set is imported); text: none
    feature_names text[] NOT NULL,
    -- text only: the input field's name in the model's data files
    text_column   text,
    -- the class names, sorted; feedback naming another class is refused
    -- (none until its first data set is imported)
    classes       text[] NOT NULL,
    -- the learner and its settings: {"name": "decision_tree", "settings": {...}}
    learner       jsonb NOT NULL,
    -- the gate's settings for this model; {} means the service's defaults
    gate          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- new feedback rows that start a run; NULL means the service's default
    threshold     integer CHECK (threshold >= 1),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (kind = 'tabular' OR cardinality(feature_names) = 0),
    CHECK ((kind = 'text') = (text_column IS NOT NULL))
);

-- The model of earlier releases, if this database served one.
INSERT INTO models (name, kind, feature_names, classes, learner)
SELECT 'wine-quality', 'tabular', d.feature_names,
       (SELECT array_agg(l::text ORDER BY l) FROM unnest(d.labels) l),
       jsonb_build_object('name', 'decision_tree', 'settings',
           coalesce((SELECT v.hyperparams FROM versions v ORDER BY v.version DESC LIMIT 1), '{}'::jsonb))
FROM datasets d
-- earlier releases stored one data set: the wine data
ORDER BY d.id DESC
LIMIT 1;

-- Every table of model data gains `model_id`, filled with wine-quality's id
-- for the rows of earlier releases, and then required. The column comes
-- with its default, so no row is updated and no row trigger fires.
DO $$
DECLARE
    wine integer := (SELECT id FROM models WHERE name = 'wine-quality');
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['datasets', 'versions', 'feedback', 'predictions', 'training_sets',
                               'collections', 'evaluations', 'validations', 'promotions', 'champion',
                               'feedback_quarantines'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN model_id integer REFERENCES models (id) DEFAULT %s',
                       tbl, coalesce(wine::text, 'NULL'));
        EXECUTE format('ALTER TABLE %I ALTER COLUMN model_id DROP DEFAULT, ALTER COLUMN model_id SET NOT NULL',
                       tbl);
    END LOOP;
END $$;

-- Data sets: numbered per model; labels are class names; text data sets
-- have no feature columns.
ALTER TABLE datasets DROP CONSTRAINT datasets_n_features_check;
ALTER TABLE datasets ALTER COLUMN labels TYPE text[] USING labels::text[];
ALTER TABLE datasets DROP CONSTRAINT datasets_name_version_key;
ALTER TABLE datasets ADD CONSTRAINT datasets_model_version UNIQUE (model_id, version);

-- An example, a prediction and a feedback row each hold one input: numeric
-- features (tabular) or a text (text); labels are class names.
ALTER TABLE examples ALTER COLUMN features DROP NOT NULL,
    ADD COLUMN text text,
    ALTER COLUMN label TYPE text USING label::text,
    ADD CONSTRAINT examples_one_input CHECK ((features IS NULL) <> (text IS NULL));
ALTER TABLE predictions ALTER COLUMN features DROP NOT NULL,
    ADD COLUMN text text,
    ALTER COLUMN label TYPE text USING label::text,
    ADD CONSTRAINT predictions_one_input CHECK ((features IS NULL) <> (text IS NULL));
ALTER TABLE feedback ALTER COLUMN features DROP NOT NULL,
    ADD COLUMN text text,
    ALTER COLUMN correct_label TYPE text USING correct_label::text,
    ALTER COLUMN predicted_label TYPE text USING predicted_label::text,
    ADD CONSTRAINT feedback_one_input CHECK ((features IS NULL) <> (text IS NULL));
CREATE INDEX feedback_by_model ON feedback (model_id, id);
DROP INDEX feedback_by_source;
CREATE INDEX feedback_by_source ON feedback (model_id, source, id);

-- Versions are numbered per model.
ALTER TABLE versions DROP CONSTRAINT models_version_key;
ALTER TABLE versions ADD CONSTRAINT versions_model_version UNIQUE (model_id, version);

-- One champion per model.
ALTER TABLE champion DROP CONSTRAINT champion_pkey;
ALTER TABLE champion DROP COLUMN singleton;
ALTER TABLE champion ADD PRIMARY KEY (model_id);

-- Collect's watermark is per model.
DROP INDEX collections_passed;
CREATE INDEX collections_passed ON collections (model_id, watermark) WHERE passed;

-- Runs of the retrain pipeline name their model as the run's subject.
UPDATE runs SET subject = 'wine-quality'
WHERE pipeline = 'retrain' AND subject = '' AND EXISTS (SELECT 1 FROM models WHERE name = 'wine-quality');

-- Quarantine rules cover one model's feedback.
CREATE OR REPLACE FUNCTION feedback_quarantined_under(f feedback, rules bigint[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM feedback_quarantines q
        WHERE q.model_id = f.model_id
          AND (rules IS NULL OR q.id = ANY (rules))
          AND (q.source IS NULL OR q.source = f.source)
          AND (q.received_from IS NULL OR f.received_at >= q.received_from)
          AND (q.received_until IS NULL OR f.received_at < q.received_until)
    )
$$;

-- Feedback of one model that counts toward its next run: ids in
-- (after, upto], not quarantined by any rule stored now.
CREATE FUNCTION feedback_counted_between(model integer, after bigint, upto bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM feedback f
    WHERE f.model_id = model AND f.id > after AND f.id <= upto
      AND NOT (EXISTS (SELECT 1 FROM feedback_quarantines q WHERE q.model_id = model)
               AND feedback_quarantined_under(f, NULL))
$$;

-- Feedback of one model that counts and waits for its next run.
CREATE FUNCTION feedback_waiting(model integer) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT feedback_counted_between(model,
        (SELECT coalesce(max(watermark), 0) FROM collections WHERE passed AND model_id = model),
        9223372036854775807)
$$;

-- Replicas LISTEN on one channel; the payload names the model.
CREATE OR REPLACE FUNCTION notify_model_promoted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('retrain_model_promoted', json_build_object(
        'promotion_id', NEW.id,
        'model', (SELECT name FROM models WHERE id = NEW.model_id),
        'version_id', NEW.version_id,
        'version', (SELECT version FROM versions WHERE id = NEW.version_id),
        'promoted_at', NEW.promoted_at)::text);
    RETURN NULL;
END $$;

-- The audit views, as before, with the model they belong to.
CREATE VIEW audit_run_timeline AS
SELECT r.id            AS run_id,
       r.subject       AS model,
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

CREATE VIEW audit_model_lineage AS
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
    WHERE e.version_id = m.id
    ORDER BY (e.run_id IS NOT DISTINCT FROM m.run_id) DESC, e.id
    LIMIT 1
) ev ON true
LEFT JOIN LATERAL (
    SELECT pr.promoted_at, pr.actor FROM promotions pr WHERE pr.version_id = m.id ORDER BY pr.id LIMIT 1
) p ON true;

CREATE VIEW audit_promotions AS
SELECT p.id          AS promotion_id,
       mo.name       AS model,
       p.promoted_at,
       p.kind,
       p.actor,
       pm.version    AS from_version,
       m.version     AS to_version,
       p.reason,
       p.run_id
FROM promotions p
JOIN models mo ON mo.id = p.model_id
JOIN versions m ON m.id = p.version_id
LEFT JOIN versions pm ON pm.id = p.previous_version_id;

CREATE VIEW audit_rejected_runs AS
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
LEFT JOIN evaluations ce ON ce.run_id = r.id AND ce.role = 'candidate'
LEFT JOIN evaluations che ON che.run_id = r.id AND che.role = 'champion'
WHERE r.status = 'rejected';

CREATE VIEW feedback_links AS
SELECT f.id AS feedback_id,
       mo.name AS model,
       f.prediction_id,
       l.link,
       f.correct_label,
       CASE l.link WHEN 'linked' THEN p.label ELSE f.predicted_label END AS predicted_label,
       CASE l.link WHEN 'linked' THEN p.model_version END AS model_version
FROM feedback f
JOIN models mo ON mo.id = f.model_id
LEFT JOIN predictions p ON p.id = f.prediction_id
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN p.id IS NULL THEN 'unlinked'
        WHEN p.model_id = f.model_id
             AND p.features IS NOT DISTINCT FROM f.features AND p.text IS NOT DISTINCT FROM f.text
             AND (f.predicted_label IS NULL OR f.predicted_label = p.label) THEN 'linked'
        ELSE 'mismatch'
    END AS link
) l
WHERE f.prediction_id IS NOT NULL;

-- The renamed table's trigger says what it guards.
ALTER TRIGGER models_immutable ON versions RENAME TO versions_immutable;
