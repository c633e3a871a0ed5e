-- A model's own schedule (issue 11: a model has a trigger threshold and a
-- cron): a 6-field cron expression (seconds first, UTC) on which a run of
-- the model starts, beside the service-wide RETRAIN_SCHEDULE. NULL: none.
ALTER TABLE models ADD COLUMN cron text CHECK (cron <> '');
