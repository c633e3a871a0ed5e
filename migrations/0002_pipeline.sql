-- The retrain pipeline's data: base data sets and their split, feedback and
-- predictions, the model registry, training-set lineage, evaluations, the
-- gate's decisions and the promotion history with its champion pointer.

-- A versioned base data set (the wine data now; users' own CSV/JSONL later).
CREATE TABLE datasets (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL,
    version       integer NOT NULL CHECK (version >= 1),
    n_features    integer NOT NULL CHECK (n_features >= 1),
    feature_names text[] NOT NULL,
    labels        integer[] NOT NULL,
    -- how the split was made (seed, proportions), for reproducibility
    split_spec    jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (name, version),
    CHECK (cardinality(feature_names) = n_features)
);

CREATE TYPE example_split AS ENUM ('base', 'golden', 'pool');

-- The split, stored once: base training rows, the golden set, the demo's pool.
CREATE TABLE examples (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id integer NOT NULL REFERENCES datasets (id),
    split      example_split NOT NULL,
    features   double precision[] NOT NULL,
    label      integer NOT NULL
);
CREATE INDEX examples_by_split ON examples (dataset_id, split, id);

-- Every prediction served, written in batches off the request path.
CREATE TABLE predictions (
    id            uuid PRIMARY KEY,
    model_version integer NOT NULL,
    features      double precision[] NOT NULL,
    label         integer NOT NULL,
    confidence    double precision NOT NULL,
    predicted_at  timestamptz NOT NULL
);

-- What users told us. Rows are never changed: a later row for the same input
-- wins at merge time. Quarantine (by source or time range) will add a table
-- of exclusions rather than rewrite this one.
CREATE TABLE feedback (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    features        double precision[] NOT NULL,
    correct_label   integer NOT NULL,
    prediction_id   uuid,
    predicted_label integer,
    model_version   integer,
    source          text,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX feedback_by_source ON feedback (source, id);
CREATE INDEX feedback_by_received ON feedback (received_at);

-- What a collect step decided: the feedback watermark and whether enough was new.
CREATE TABLE collections (
    run_id             uuid PRIMARY KEY REFERENCES runs (id),
    previous_watermark bigint NOT NULL,
    watermark          bigint NOT NULL,
    new_rows           bigint NOT NULL,
    threshold          bigint NOT NULL,
    passed             boolean NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX collections_passed ON collections (watermark) WHERE passed;

-- The lineage of a training set: base data version + feedback up to a watermark.
CREATE TABLE training_sets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL for the bootstrap model's set
    run_id          uuid UNIQUE REFERENCES runs (id),
    dataset_id      integer NOT NULL REFERENCES datasets (id),
    feedback_from   bigint NOT NULL,
    feedback_to     bigint NOT NULL,
    base_rows       integer NOT NULL,
    feedback_rows   integer NOT NULL,
    total_rows      integer NOT NULL,
    -- rows left out, by reason: {"reason": count}
    dropped         jsonb NOT NULL,
    -- sha256 over the merged rows in order: the same set gives the same hash
    content_sha256  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (feedback_from <= feedback_to + 1)
);

CREATE TABLE models (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version         integer NOT NULL UNIQUE CHECK (version >= 1),
    kind            text NOT NULL,
    artifact        bytea NOT NULL,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    hyperparams     jsonb NOT NULL,
    training_set_id bigint NOT NULL REFERENCES training_sets (id),
    -- NULL for the bootstrap model; one model per run at most
    run_id          uuid UNIQUE REFERENCES runs (id),
    training_ms     integer NOT NULL,
    training_metrics jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TYPE evaluation_role AS ENUM ('candidate', 'champion');

-- A model's metrics on a golden set, as measured for a run (or at bootstrap).
CREATE TABLE evaluations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     uuid REFERENCES runs (id),
    model_id   bigint NOT NULL REFERENCES models (id),
    role       evaluation_role NOT NULL,
    dataset_id integer NOT NULL REFERENCES datasets (id),
    n          integer NOT NULL,
    accuracy   double precision NOT NULL,
    macro_f1   double precision NOT NULL,
    -- per-class recall/precision/F1 and the confusion matrix
    metrics    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (run_id, role)
);
CREATE INDEX evaluations_by_model ON evaluations (model_id, created_at DESC);

-- The gate's decision for a run, with each check and the paired comparison.
CREATE TABLE validations (
    run_id        uuid PRIMARY KEY REFERENCES runs (id),
    candidate_id  bigint NOT NULL REFERENCES models (id),
    champion_id   bigint REFERENCES models (id),
    passed        boolean NOT NULL,
    checks        jsonb NOT NULL,
    comparison    jsonb,
    gate_config   jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TYPE promotion_kind AS ENUM ('bootstrap', 'pipeline', 'manual', 'rollback');

-- Append-only history of which model served when, and why.
CREATE TABLE promotions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id          bigint NOT NULL REFERENCES models (id),
    previous_model_id bigint REFERENCES models (id),
    run_id            uuid REFERENCES runs (id),
    kind              promotion_kind NOT NULL,
    reason            text NOT NULL,
    actor             text NOT NULL CHECK (actor <> ''),
    promoted_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- A run promotes at most once, whatever crashes and retries happen.
CREATE UNIQUE INDEX promotions_one_per_run ON promotions (run_id) WHERE run_id IS NOT NULL;

CREATE TRIGGER promotions_append_only BEFORE UPDATE OR DELETE ON promotions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();
CREATE TRIGGER promotions_no_truncate BEFORE TRUNCATE ON promotions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_rewrite();

-- The model serving now: one row, changed only together with a promotion.
CREATE TABLE champion (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model_id     bigint NOT NULL REFERENCES models (id),
    promotion_id bigint NOT NULL UNIQUE REFERENCES promotions (id),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Serving replicas LISTEN here. NOTIFY is delivered on commit only, so no
-- replica can see a promotion that did not commit.
CREATE FUNCTION notify_model_promoted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('retrain_model_promoted', json_build_object(
        'promotion_id', NEW.id,
        'model_id', NEW.model_id,
        'version', (SELECT version FROM models WHERE id = NEW.model_id),
        'promoted_at', NEW.promoted_at)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER promotions_notify AFTER INSERT ON promotions
    FOR EACH ROW EXECUTE FUNCTION notify_model_promoted();

-- An artifact's bytes, hash and lineage never change once stored.
CREATE TRIGGER models_immutable BEFORE UPDATE OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();
-- Acknowledged feedback is never rewritten (exclusions live elsewhere).
CREATE TRIGGER feedback_immutable BEFORE UPDATE ON feedback
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();
