"""The PostgreSQL store's schema migrations (spec §8.2), one list of statements
per schema version; ``_postgres_sql.MIGRATIONS`` re-exports them. Every
connection's ``search_path`` is the store's schema, so names are unqualified.
"""

from __future__ import annotations

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS trexec_meta (
            key text PRIMARY KEY,
            value text NOT NULL
        )""",
        """CREATE OR REPLACE FUNCTION trexec_now() RETURNS timestamptz
            LANGUAGE sql STABLE AS $$
            SELECT now() + make_interval(secs => coalesce(
                nullif(current_setting('trexec.clock_offset', true), '')::float8, 0))
        $$""",
        """CREATE TABLE trexec_instances (
            id bigserial PRIMARY KEY,
            machine text NOT NULL,
            version integer NOT NULL,
            step text NOT NULL,
            status text NOT NULL,
            state text NOT NULL,
            result text,
            error text,
            attempt integer NOT NULL DEFAULT 1,
            key text,
            parent_id bigint,
            run_at timestamptz,
            awaits text[] NOT NULL DEFAULT '{}',
            pending_children integer NOT NULL DEFAULT 0,
            child_count integer NOT NULL DEFAULT 0,
            token bigint NOT NULL DEFAULT 0,
            lease_expires_at timestamptz,
            rate_limit text,
            weight integer NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )""",
        """CREATE INDEX trexec_instances_runnable ON trexec_instances (run_at, id)
            WHERE status IN ('scheduled', 'awaiting')""",
        """CREATE INDEX trexec_instances_leases ON trexec_instances (lease_expires_at)
            WHERE status = 'running'""",
        """CREATE UNIQUE INDEX trexec_instances_live_key ON trexec_instances (key)
            WHERE key IS NOT NULL AND status NOT IN ('done', 'stopped', 'cancelled')""",
        """CREATE INDEX trexec_instances_key ON trexec_instances (key, id)
            WHERE key IS NOT NULL""",
        """CREATE INDEX trexec_instances_parent ON trexec_instances (parent_id, id)
            WHERE parent_id IS NOT NULL""",
        "CREATE INDEX trexec_instances_status ON trexec_instances (status, id)",
        """CREATE TABLE trexec_signals (
            id bigserial PRIMARY KEY,
            instance_id bigint NOT NULL,
            name text NOT NULL,
            payload text NOT NULL,
            dedup_key text,
            created_at timestamptz NOT NULL
        )""",
        "CREATE INDEX trexec_signals_instance ON trexec_signals (instance_id, id)",
        """CREATE TABLE trexec_signal_dedup (
            instance_id bigint NOT NULL,
            dedup_key text NOT NULL,
            signal_id bigint NOT NULL,
            PRIMARY KEY (instance_id, dedup_key)
        )""",
        """CREATE TABLE trexec_rate_buckets (
            key text PRIMARY KEY,
            tokens float8 NOT NULL,
            updated_at timestamptz NOT NULL
        )""",
    ],
    # spec §8.7.1: runnable rows by machine, in claim order. With an equality on
    # (machine, version) the claim is an ordered index scan that stops after
    # `limit` rows, whatever the planner's statistics say; the (run_at, id) index
    # let a stale estimate pick a bitmap scan and a sort of every runnable row.
    2: [
        """CREATE INDEX IF NOT EXISTS trexec_instances_runnable_by_machine
            ON trexec_instances (machine, version, run_at, id)
            WHERE status IN ('scheduled', 'awaiting')""",
        "DROP INDEX IF EXISTS trexec_instances_runnable",
    ],
    # spec §12.3: the dashboard's filters, newest first, at any table size: with
    # these (and _status, _key) every filter combination of Store.list is one
    # index range scan in id order that stops after `limit`.
    3: [
        """CREATE INDEX IF NOT EXISTS trexec_instances_machine
            ON trexec_instances (machine, id)""",
        """CREATE INDEX IF NOT EXISTS trexec_instances_machine_status
            ON trexec_instances (machine, status, id)""",
    ],
    # spec §11: priorities and concurrency keys (as SQLite migration 3). A row a
    # claim found blocked by its key (every slot held) gets key_blocked and leaves
    # the claim and next_due indexes; the trigger hands a freed slot to the next
    # blocked rows of the key when a row of the key leaves `running` (or is
    # cancelled), under the key's advisory lock (the claim's serialization point,
    # spec §11.2.3), and NOTIFYs idle workers (no lost wake-up).
    4: [
        """ALTER TABLE trexec_instances
            ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS concurrency_key text,
            ADD COLUMN IF NOT EXISTS concurrency_limit integer NOT NULL DEFAULT 1,
            ADD COLUMN IF NOT EXISTS key_blocked boolean NOT NULL DEFAULT false""",
        """CREATE INDEX IF NOT EXISTS trexec_instances_claim
            ON trexec_instances (machine, version, priority DESC, run_at, id)
            WHERE status IN ('scheduled', 'awaiting') AND NOT key_blocked""",
        """CREATE INDEX IF NOT EXISTS trexec_instances_due
            ON trexec_instances (machine, version, run_at)
            WHERE status IN ('scheduled', 'awaiting') AND NOT key_blocked""",
        "DROP INDEX IF EXISTS trexec_instances_runnable_by_machine",
        """CREATE INDEX IF NOT EXISTS trexec_instances_slots
            ON trexec_instances (concurrency_key)
            WHERE status = 'running' AND concurrency_key IS NOT NULL""",
        """CREATE INDEX IF NOT EXISTS trexec_instances_blocked
            ON trexec_instances (concurrency_key, priority DESC, run_at, id)
            WHERE key_blocked AND status IN ('scheduled', 'awaiting')""",
        """CREATE OR REPLACE FUNCTION trexec_slot_freed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(
                    hashtextextended('trexec.key.' || OLD.concurrency_key, 0));
                UPDATE trexec_instances SET key_blocked = false WHERE id IN (
                    SELECT id FROM trexec_instances
                    WHERE concurrency_key = OLD.concurrency_key AND key_blocked
                    AND status IN ('scheduled', 'awaiting')
                    ORDER BY priority DESC, run_at, id LIMIT OLD.concurrency_limit
                    FOR UPDATE SKIP LOCKED);
                IF FOUND THEN
                    PERFORM pg_notify(left('trexec_' || current_schema(), 63), '');
                END IF;
                RETURN NULL;
            END
        $$""",
        "DROP TRIGGER IF EXISTS trexec_instances_slot_freed ON trexec_instances",
        """CREATE TRIGGER trexec_instances_slot_freed
            AFTER UPDATE OF status ON trexec_instances FOR EACH ROW
            WHEN (OLD.concurrency_key IS NOT NULL AND NEW.status <> 'running'
                AND (OLD.status = 'running' OR NEW.status = 'cancelled'))
            EXECUTE FUNCTION trexec_slot_freed()""",
    ],
    # spec §11.4: one row per schedule name; `cursor` is the last tick fired.
    5: [
        """CREATE TABLE IF NOT EXISTS trexec_schedules (
            name text PRIMARY KEY,
            cron text NOT NULL,
            tz text NOT NULL,
            paused integer NOT NULL DEFAULT 0,
            cursor float8 NOT NULL,
            last_fired_at float8,
            updated_at float8 NOT NULL
        )""",
    ],
    # spec §14.2: the trace context stored with an instance; spec §5.16: the
    # live engines' announcements, for explain.
    6: [
        "ALTER TABLE trexec_instances ADD COLUMN IF NOT EXISTS trace_context text",
        """CREATE TABLE IF NOT EXISTS trexec_engines (
            id text PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            machines text[] NOT NULL,
            holding bigint[] NOT NULL,
            started_at timestamptz NOT NULL,
            heartbeat_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL
        )""",
    ],
    # spec §12.3.2, §8.7.3: fewer index entries per step. A status change is not a
    # HOT update, so it writes an entry into every index whose predicate the new
    # row meets; these four cost 3 of the ~6 a claim or a commit wrote. The
    # dashboard's filters are served by (machine, status, id) alone, the reaper
    # by it too (running rows are few), next_due by the claim index; a heartbeat,
    # which changes only lease_expires_at, is now a HOT update.
    7: [
        "DROP INDEX IF EXISTS trexec_instances_status",
        "DROP INDEX IF EXISTS trexec_instances_machine",
        "DROP INDEX IF EXISTS trexec_instances_leases",
        "DROP INDEX IF EXISTS trexec_instances_due",
        # The joint frequencies of (machine, status), so that the planner sees a
        # rare pair (a machine with few rows of a status) and reads it from the
        # (machine, status, id) index rather than walking the primary key.
        """CREATE STATISTICS IF NOT EXISTS trexec_instances_machine_status_stats (mcv)
            ON machine, status FROM trexec_instances""",
    ],
}
