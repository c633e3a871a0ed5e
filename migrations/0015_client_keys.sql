-- Client keys (issue 15): who may predict, send feedback or administer, by
-- name. Only a sha256 of each key is stored (the key is 256 random bits, so
-- a plain hash cannot be reversed or guessed; see api/src/keys/mod.rs), with
-- a short prefix of the key that is safe to show. A name identifies one key
-- forever: revoked keys stay, so the feedback and audit rows that name them
-- keep meaning the same client.
CREATE TABLE client_keys (
    name       text PRIMARY KEY
               CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' AND name NOT IN ('admin', 'anonymous')),
    prefix     text NOT NULL,
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    scopes     text[] NOT NULL
               CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['predict', 'feedback', 'admin']),
    -- the one model the key may predict for and send feedback to (NULL: any)
    model      text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by text NOT NULL CHECK (created_by <> ''),
    revoked_at timestamptz,
    revoked_by text,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- Who created or revoked which key, when: append-only.
CREATE TABLE client_key_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_name text NOT NULL REFERENCES client_keys (name),
    action   text NOT NULL CHECK (action IN ('create', 'revoke')),
    actor    text NOT NULL CHECK (actor <> ''),
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER client_key_events_append_only BEFORE UPDATE OR DELETE ON client_key_events
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();

-- Feedback's `source` is now the sending key's name, set by the server; what
-- the client wrote as `source` is kept here, for its own bookkeeping only.
ALTER TABLE feedback ADD COLUMN sub_label text;
