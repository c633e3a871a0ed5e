-- The durable run engine: runs, their steps, and the append-only audit history.
-- Legal state changes live here (transition tables + triggers), so no code path,
-- ours or an operator's psql session, can make an illegal one.

CREATE TYPE run_status AS ENUM
    ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'rejected');
CREATE TYPE step_status AS ENUM
    ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled');
CREATE TYPE trigger_kind AS ENUM ('manual', 'schedule', 'threshold');

CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    pipeline         text NOT NULL CHECK (pipeline <> ''),
    status           run_status NOT NULL DEFAULT 'queued',
    trigger          trigger_kind NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    requested_by     text NOT NULL CHECK (requested_by <> ''),
    -- position of the step the run waits on; equals the step count once done
    current_step     integer NOT NULL DEFAULT 0 CHECK (current_step >= 0),
    cancel_requested_at timestamptz,
    -- why the run ended as it did (skip/reject reasons, the failing error)
    outcome          jsonb,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- At most one active run per pipeline; concurrent triggers collide here.
CREATE UNIQUE INDEX runs_one_active_per_pipeline
    ON runs (pipeline) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_status_created ON runs (status, created_at DESC);
CREATE INDEX runs_by_created ON runs (created_at DESC);

CREATE TABLE steps (
    run_id             uuid NOT NULL REFERENCES runs (id),
    position           integer NOT NULL CHECK (position >= 0),
    name               text NOT NULL,
    status             step_status NOT NULL DEFAULT 'pending',
    -- attempts made so far, over the step's whole life (never reset, so that
    -- (lease_owner, attempt) fences a commit uniquely)
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- attempts allowed per round; a run retry starts a new round at retry_base
    max_attempts       integer NOT NULL CHECK (max_attempts >= 1),
    retry_base         integer NOT NULL DEFAULT 0,
    backoff_initial_ms integer NOT NULL CHECK (backoff_initial_ms >= 0),
    backoff_multiplier double precision NOT NULL CHECK (backoff_multiplier >= 1),
    backoff_cap_ms     integer NOT NULL CHECK (backoff_cap_ms >= 0),
    next_attempt_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_owner        text,
    lease_expires_at   timestamptz,
    output             jsonb,
    last_error         text,
    started_at         timestamptz,
    finished_at        timestamptz,
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, name),
    CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The claim query's access paths: due pending steps, and expired leases.
CREATE INDEX steps_due ON steps (next_attempt_at) WHERE status = 'pending';
CREATE INDEX steps_leased ON steps (lease_expires_at) WHERE status = 'running';

CREATE TABLE run_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES runs (id),
    -- NULL for an event of the run itself
    step        text,
    attempt     integer,
    from_status text,
    to_status   text NOT NULL,
    actor       text NOT NULL CHECK (actor <> ''),
    reason      text,
    detail      jsonb,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX run_events_by_run ON run_events (run_id, id);

-- Legal transitions. A run is re-queued only by an operator's retry of a failed run.
CREATE TABLE run_transitions (
    from_status run_status NOT NULL,
    to_status   run_status NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO run_transitions VALUES
    ('queued', 'running'), ('queued', 'cancelled'),
    ('running', 'succeeded'), ('running', 'failed'), ('running', 'cancelled'),
    ('running', 'skipped'), ('running', 'rejected'),
    ('failed', 'queued');

CREATE TABLE step_transitions (
    from_status step_status NOT NULL,
    to_status   step_status NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO step_transitions VALUES
    ('pending', 'running'), ('pending', 'skipped'), ('pending', 'cancelled'),
    ('running', 'succeeded'), ('running', 'failed'), ('running', 'pending'),
    ('running', 'cancelled'),
    ('failed', 'pending');

CREATE FUNCTION enforce_run_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'queued' THEN
            RAISE EXCEPTION 'a run starts queued, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM run_transitions
                       WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal run transition % -> % (run %)', OLD.status, NEW.status, OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END $$;

CREATE TRIGGER runs_transition BEFORE INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION enforce_run_transition();

CREATE FUNCTION enforce_step_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'a step starts pending, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM step_transitions
                       WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal step transition % -> % (run %, step %)',
                OLD.status, NEW.status, OLD.run_id, OLD.name
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER steps_transition BEFORE INSERT OR UPDATE ON steps
    FOR EACH ROW EXECUTE FUNCTION enforce_step_transition();

CREATE FUNCTION refuse_history_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER run_events_append_only BEFORE UPDATE OR DELETE ON run_events
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();
CREATE TRIGGER run_events_no_truncate BEFORE TRUNCATE ON run_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_rewrite();

-- Workers LISTEN on this channel; a run queued (or re-queued) wakes them at once.
CREATE FUNCTION notify_run_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'queued' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'queued') THEN
        PERFORM pg_notify('retrain_run_queued', NEW.pipeline);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_notify_queued AFTER INSERT OR UPDATE OF status ON runs
    FOR EACH ROW EXECUTE FUNCTION notify_run_queued();
