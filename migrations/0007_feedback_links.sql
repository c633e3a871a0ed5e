-- Feedback may cite a prediction that is not in the prediction log when it
-- arrives: another replica served it and has not written it yet, the log
-- dropped it under pressure, or it was pruned. Refusing such feedback would
-- lose a correct client's label for good, so it is stored with the
-- prediction id as sent, the predicted label as claimed, and no model
-- version. Feedback rows never change, so the link is read rather than
-- written back: this view joins each row citing a prediction to the log.
--   linked    the prediction is logged, for these features (and the claimed
--             label, if any): predicted_label and model_version are the log's
--   unlinked  not logged (yet, or ever): the row says what the client said
--   mismatch  logged, but for other features or another label: the row
--             says what the client said
CREATE VIEW feedback_links AS
SELECT f.id AS feedback_id,
       f.prediction_id,
       l.link,
       f.correct_label,
       CASE l.link WHEN 'linked' THEN p.label ELSE f.predicted_label END AS predicted_label,
       CASE l.link WHEN 'linked' THEN p.model_version END AS model_version
FROM feedback f
LEFT JOIN predictions p ON p.id = f.prediction_id
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN p.id IS NULL THEN 'unlinked'
        WHEN p.features = f.features AND (f.predicted_label IS NULL OR f.predicted_label = p.label) THEN 'linked'
        ELSE 'mismatch'
    END AS link
) l
WHERE f.prediction_id IS NOT NULL;
