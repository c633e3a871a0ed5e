-- Idempotency keys: a client that retries `POST /feedback` or `POST /runs`
-- with the same `Idempotency-Key` gets the first answer again and stores
-- nothing new. A key is claimed (inserted) in the same transaction as what
-- the request stores, so concurrent retries wait on the key's row lock and
-- then replay the committed answer; a request that fails records no key.
--
-- Retention: a key answers for 24 hours. An older row is treated as absent
-- (a new request may reclaim it) and is deleted by a lazy periodic prune.

CREATE TABLE idempotency_keys (
    -- the endpoint, e.g. 'POST /feedback'
    scope           text NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    -- sha256 of the request's canonical JSON: a used key with another body is refused
    request_hash    bytea NOT NULL CHECK (length(request_hash) = 32),
    -- the first answer; NULL only inside the transaction that claimed the key
    response_status smallint CHECK (response_status BETWEEN 100 AND 599),
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
