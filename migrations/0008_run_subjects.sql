-- A run's subject: what it acts on, for pipelines that run once per thing
-- (the retrain pipeline runs per model, named here). "One active run" now
-- means one per pipeline and subject, so two models retrain at once while
-- concurrent triggers for one model still collide on the index. Pipelines
-- without subjects use the empty one and behave as before.
ALTER TABLE runs ADD COLUMN subject text NOT NULL DEFAULT '';

DROP INDEX runs_one_active_per_pipeline;
CREATE UNIQUE INDEX runs_one_active_per_subject
    ON runs (pipeline, subject) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_subject_created ON runs (subject, created_at DESC);
