-- Issue 12: how each version's learner was chosen. Model selection runs
-- k-fold cross-validation on the training set over a grid of candidates;
-- the record says which learner and settings won, every candidate's fold
-- accuracies, k and the seed:
--   {"chosen": {"name", "settings"}, "requested": {"name", "settings"},
--    "folds": 3, "seed": 12, "candidates": [{"learner", "fold_accuracy", "mean_accuracy"}]}
-- NULL for versions trained before selection existed. Stored learners are
-- left as they are: a model registered with an explicit learner keeps it,
-- and new models default to {"name": "auto"}.
ALTER TABLE versions ADD COLUMN selection jsonb;
