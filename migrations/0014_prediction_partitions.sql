-- Retention and pagination (issue 14).
--
-- `predictions` grows with every answer the service gives. It becomes a table
-- partitioned by day (UTC) of `predicted_at`, so the worker prunes it by
-- dropping whole days (`DROP TABLE` of a partition: no row deletes, no
-- vacuum debt). A DEFAULT partition catches rows of a day whose partition
-- does not exist yet, so a prediction is never refused for want of one;
-- `prediction_partition_create` later moves them into their day.
--
-- Feedback keeps citing predictions by id without a foreign key (it never
-- had one): a cited prediction may be on another replica's way to the log,
-- dropped by the log under pressure, or pruned; `feedback_links` says which
-- rows link.

-- The view reads `predictions`; it is made again, unchanged, below.
DROP VIEW feedback_links;

ALTER TABLE predictions RENAME TO predictions_unpartitioned;
ALTER TABLE predictions_unpartitioned RENAME CONSTRAINT predictions_one_input TO predictions_unpartitioned_one_input;

-- The primary key of a partitioned table must hold the partition key; ids
-- are fresh UUIDs, so (id, predicted_at) is as unique as id, and a lookup
-- by id alone uses each partition's key index.
CREATE TABLE predictions (
    id            uuid NOT NULL,
    model_id      integer NOT NULL REFERENCES models (id),
    model_version integer NOT NULL,
    features      double precision[],
    text          text,
    label         text NOT NULL,
    confidence    double precision NOT NULL,
    predicted_at  timestamptz NOT NULL,
    CONSTRAINT predictions_one_input CHECK ((features IS NULL) <> (text IS NULL)),
    PRIMARY KEY (id, predicted_at)
) PARTITION BY RANGE (predicted_at);

CREATE TABLE predictions_default PARTITION OF predictions DEFAULT;

-- Creates the partition of one UTC day, if it does not exist, moving into it
-- the rows of that day that landed in the DEFAULT partition meanwhile.
-- Returns whether it made the partition. Concurrent callers (several
-- workers, API replicas at start) take turns on an advisory lock.
CREATE FUNCTION prediction_partition_create(day date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    part text := 'predictions_p' || to_char(day, 'YYYYMMDD');
    low  timestamptz := day::timestamp AT TIME ZONE 'UTC';
    high timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('prediction_partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Made apart and attached, so rows of the day waiting in the DEFAULT
    -- partition can move first (a partition cannot be created over them);
    -- the CHECK spares ATTACH a scan of the new table.
    EXECUTE format('CREATE TABLE %I (LIKE predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                                     CHECK (predicted_at >= %L AND predicted_at < %L))', part, low, high);
    EXECUTE format('WITH moved AS (DELETE FROM predictions_default
                                   WHERE predicted_at >= %L AND predicted_at < %L RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', low, high, part);
    EXECUTE format('ALTER TABLE predictions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, low, high);
    RETURN true;
END $$;

-- The rows of earlier releases go to the partitions of their days.
SELECT prediction_partition_create(d)
FROM (SELECT DISTINCT (predicted_at AT TIME ZONE 'UTC')::date AS d FROM predictions_unpartitioned) days;
-- Today and the next days, so a fresh database has them before any worker ran.
SELECT prediction_partition_create((now() AT TIME ZONE 'UTC')::date + n) FROM generate_series(0, 3) n;

INSERT INTO predictions (id, model_id, model_version, features, text, label, confidence, predicted_at)
SELECT id, model_id, model_version, features, text, label, confidence, predicted_at FROM predictions_unpartitioned;
DROP TABLE predictions_unpartitioned;

-- As in 0009, on the partitioned table.
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

-- Lists page by keyset, newest first: runs by (created_at, id), with or
-- without a status or model filter. The id makes the order total, so a page
-- boundary between runs created in the same microsecond loses none.
DROP INDEX runs_by_created;
DROP INDEX runs_by_status_created;
DROP INDEX runs_by_subject_created;
CREATE INDEX runs_by_created ON runs (created_at, id);
CREATE INDEX runs_by_status_created ON runs (status, created_at, id);
CREATE INDEX runs_by_subject_created ON runs (subject, created_at, id);
