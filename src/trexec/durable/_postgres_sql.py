"""The PostgreSQL store's SQL, one constant per operation of the spec (spec §5.2, §8).

It mirrors ``_sqlite_sql.py``; the stores differ only in dialect. Every
connection's ``search_path`` is the store's schema, so names are unqualified;
tables carry a ``trexec_`` prefix because the default schema is ``public``.
Times are ``timestamptz`` of the *database's* clock (spec §8.6.1): ``NOW`` below
is the only source of "now"; rows are read back as epoch seconds (float).
"""

from __future__ import annotations

#: The database clock (spec §8.6.1). ``trexec_now()`` is ``now()`` (the transaction's
#: start time) plus an offset that only tests set (``trexec.clock_offset``).
NOW = "trexec_now()"

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
    # 4 and 5 are reserved for migrations being written on other branches.
    4: [],
    5: [],
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
}

# Migrations from several processes at once queue on this lock (spec §8.2.3).
MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('trexec.migrate.' || %s))"
CREATE_SCHEMA = 'CREATE SCHEMA IF NOT EXISTS "{}"'
META_EXISTS = "SELECT to_regclass('trexec_meta') IS NOT NULL"
SCHEMA_VERSION_GET = "SELECT value FROM trexec_meta WHERE key = 'schema_version'"
SCHEMA_VERSION_SET = (
    "INSERT INTO trexec_meta (key, value) VALUES ('schema_version', %s)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def epoch(column: str) -> str:
    return f"extract(epoch from {column})::float8"


INSTANCE_COLUMNS = (
    "id, machine, version, step, status, state, result, error, attempt, key, parent_id,"
    f" awaits, pending_children, {epoch('run_at')}, {epoch('created_at')},"
    f" {epoch('updated_at')}"
)
SIGNAL_COLUMNS = f"id, name, payload, dedup_key, {epoch('created_at')}"

# NOTIFY the store's channel: delivered at commit, collapsed within a transaction
# (spec §8.5.1). The payload is empty: a woken worker just claims again.
NOTIFY = "SELECT pg_notify(%s, '')"

# --- insert (spec §5.3) -------------------------------------------------------
INSERT = (
    "INSERT INTO trexec_instances (machine, version, step, status, state, key, parent_id,"
    " run_at, created_at, updated_at, trace_context)"
    f" SELECT machine, version, step, 'scheduled', state, key, parent_id,"
    f" {NOW} + make_interval(secs => delay), {NOW}, {NOW}, trace"
    " FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
    " %s::float8[], %s::text[]) WITH ORDINALITY"
    " AS i(machine, version, step, state, key, parent_id, delay, trace, n) ORDER BY n"
    " RETURNING id"
)
LOCK_PARENTS = "SELECT id FROM trexec_instances WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
PARENT_ADD_CHILDREN = (
    "UPDATE trexec_instances p SET child_count = child_count + c.n,"
    " pending_children = pending_children"
    " + CASE WHEN status = 'waiting_children' THEN c.n ELSE 0 END"
    " FROM unnest(%s::bigint[], %s::int[]) AS c(id, n) WHERE p.id = c.id"
)

# --- claim (spec §5.5) --------------------------------------------------------
# spec §8.7.1: one ordered scan of trexec_instances_runnable_by_machine per machine
# this worker runs (LATERAL), merged by (run_at, id). Each scan locks at most
# `limit` rows; the rows the merge leaves out are unlocked at commit.
_MACHINES = "unnest(%(machines)s::text[], %(versions)s::int[]) AS m(machine, version)"


def _runnable(columns: str) -> str:
    return (
        f"SELECT r.* FROM {_MACHINES}, LATERAL (SELECT {columns} FROM trexec_instances"
        " WHERE machine = m.machine AND version = m.version"
        f" AND status IN ('scheduled', 'awaiting') AND run_at <= {NOW}"
        " ORDER BY run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) r"
        " ORDER BY r.run_at, r.id LIMIT %(limit)s"
    )


_CLAIMED_COLUMNS = (
    "id, token, machine, version, step, attempt, state, key, parent_id, awaits, child_count,"
    " trace_context"
)
_CLAIM_SET = (
    "status = 'running', token = i.token + 1,"
    f" lease_expires_at = {NOW} + make_interval(secs => %(lease)s),"
    " awaits = CASE WHEN i.status = 'awaiting' THEN '{}'::text[] ELSE i.awaits END,"
    f" run_at = NULL, updated_at = {NOW}"
)
# Without rate limits a claim is one statement: lock and take the oldest rows.
# Each claimed row's inbox comes back with it (a JSON array, NULL if empty): one
# statement, one round trip, the same snapshot.
_CLAIMED = ", ".join("i." + c for c in _CLAIMED_COLUMNS.split(", ")) + (
    ", (SELECT json_agg(json_build_array(s.id, s.name, s.payload, s.dedup_key,"
    f" {epoch('s.created_at')}) ORDER BY s.id) FROM trexec_signals s"
    " WHERE s.instance_id = i.id)"
)
CLAIM = (
    f"UPDATE trexec_instances i SET {_CLAIM_SET}"
    f" FROM ({_runnable('id, run_at')}) c"
    f" WHERE i.id = c.id RETURNING {_CLAIMED}, c.run_at"
)
# spec §8.7.2: with rate limits, lock candidates, then buckets in key order, then claim.
CLAIM_CANDIDATES = (
    f"SELECT c.id, c.rate_limit, c.weight FROM ({_runnable('id, run_at, rate_limit, weight')}) c"
    " ORDER BY c.run_at, c.id"
)
CLAIM_ROWS = (
    f"UPDATE trexec_instances i SET {_CLAIM_SET} WHERE i.id = ANY(%(ids)s) RETURNING {_CLAIMED}"
)
CLAIM_CHILDREN = (
    f"SELECT {INSTANCE_COLUMNS} FROM trexec_instances WHERE parent_id = ANY(%s) ORDER BY id"
)
CLOCK = f"SELECT {epoch(NOW)}"
CLOCK_RAW = f"SELECT {epoch('now()')}"
# Tests only (PostgresStore's ``clock``): trexec_now() = origin + elapsed test time.
SET_CLOCK_OFFSET = (
    "SELECT set_config('trexec.clock_offset',"
    f" (%s::float8 - ({epoch('now()')} - %s::float8))::text, true)"
)
BUCKETS_ENSURE = (
    "INSERT INTO trexec_rate_buckets (key, tokens, updated_at)"
    f" SELECT k, b, {NOW} FROM unnest(%s::text[], %s::float8[]) AS t(k, b)"
    " ON CONFLICT (key) DO NOTHING"
)
BUCKETS_LOCK = (  # key order: concurrent claims queue, never deadlock
    f"SELECT key, tokens, {epoch('updated_at')} FROM trexec_rate_buckets"
    " WHERE key = ANY(%s) ORDER BY key FOR UPDATE"
)
BUCKETS_SET = (
    "UPDATE trexec_rate_buckets b SET tokens = t.tokens, updated_at = to_timestamp(t.at)"
    " FROM unnest(%s::text[], %s::float8[], %s::float8[]) AS t(key, tokens, at)"
    " WHERE b.key = t.key"
)
THROTTLE_ROWS = (
    f"UPDATE trexec_instances i SET run_at = {NOW} + make_interval(secs => t.wait)"
    " FROM unnest(%s::bigint[], %s::float8[]) AS t(id, wait) WHERE i.id = t.id"
)

NEXT_DUE = (  # the earliest run_at of each machine: one index probe each
    # greatest() ignores NULL: without the CASE "nothing due" would read as "due
    # now" and an idle picker would spin on claim + next_due.
    "SELECT CASE WHEN min(r.run_at) IS NULL THEN NULL"
    f" ELSE greatest(0, {epoch('min(r.run_at) - ' + NOW)}) END"
    " FROM unnest(%s::text[], %s::int[]) AS m(machine, version),"
    " LATERAL (SELECT run_at FROM trexec_instances WHERE machine = m.machine"
    " AND version = m.version AND status IN ('scheduled', 'awaiting')"
    " AND run_at IS NOT NULL ORDER BY run_at LIMIT 1) r"
)

# --- leases (spec §5.8) -------------------------------------------------------
_LEASES = "unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS l(id, token)"
# Rows are locked in id order, as complete() locks them: the two never deadlock.
_LOCKED_IN_ORDER = "(SELECT id FROM trexec_instances WHERE id = ANY({}) ORDER BY id FOR UPDATE)"
HEARTBEAT = (
    f"UPDATE trexec_instances i SET lease_expires_at = {NOW} + make_interval(secs => %(lease)s)"
    f" FROM {_LEASES} WHERE i.id = l.id AND i.token = l.token AND i.status = 'running'"
    f" AND i.id IN {_LOCKED_IN_ORDER.format('%(ids)s')} RETURNING i.id"
)
RELEASE = (
    f"UPDATE trexec_instances i SET status = 'scheduled', run_at = {NOW},"
    " lease_expires_at = NULL, attempt = attempt + r.bump, updated_at = " + NOW + ""
    " FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS r(id, token, bump)"
    " WHERE i.id = r.id AND i.token = r.token AND i.status = 'running'"
    " AND i.id IN (SELECT id FROM trexec_instances WHERE id = ANY(%s) ORDER BY id FOR UPDATE)"
    " RETURNING i.id"
)
# SKIP LOCKED: a row another reaper (or its own worker's commit) holds is left
# to it; every expired row is reclaimed by exactly one transaction (spec §8.9.1).
REAP_EXPIRED = (
    f"UPDATE trexec_instances i SET status = 'scheduled', run_at = {NOW},"
    f" lease_expires_at = NULL, attempt = attempt + 1, updated_at = {NOW}"
    " FROM (SELECT id FROM trexec_instances WHERE status = 'running'"
    f" AND lease_expires_at < {NOW} ORDER BY id FOR UPDATE SKIP LOCKED) e"
    " WHERE i.id = e.id RETURNING i.id, i.machine, i.step, i.attempt"
)

# --- complete (spec §5.4) -----------------------------------------------------
# spec §8.8.1: lock every row the batch names, in id order (no deadlock between batches).
FENCE = (
    "SELECT id, status, token, parent_id FROM trexec_instances"
    " WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
)
# The trailing "i.id = ANY(ids)" lets the planner probe the primary key instead of
# hash-joining the whole table (it cannot size an unnest() parameter).
COMPLETE_NEXT = (
    f"UPDATE trexec_instances i SET status = 'scheduled', step = c.step, state = c.state,"
    f" attempt = 1, run_at = {NOW}, awaits = '{{}}', rate_limit = c.rate_limit,"
    f" weight = c.weight, lease_expires_at = NULL, updated_at = {NOW}"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::int[])"
    " AS c(id, step, state, rate_limit, weight) WHERE i.id = c.id AND i.id = ANY(%s)"
)
COMPLETE_RETRY = (
    "UPDATE trexec_instances SET status = 'scheduled', state = %s, attempt = attempt + 1,"
    f" run_at = {NOW} + make_interval(secs => %s), lease_expires_at = NULL,"
    f" updated_at = {NOW} WHERE id = %s"
)
COMPLETE_AWAIT = (
    "UPDATE trexec_instances SET status = 'awaiting', step = %s, state = %s, attempt = 1,"
    f" run_at = {NOW} + make_interval(secs => %s), awaits = %s, rate_limit = NULL,"
    f" weight = 1, lease_expires_at = NULL, updated_at = {NOW} WHERE id = %s"
)
# No lost wake-up: a matching signal already in the inbox makes it runnable now.
AWAIT_MATCHING_SIGNAL = (
    "SELECT 1 FROM trexec_signals WHERE instance_id = %s AND name = ANY(%s) LIMIT 1"
)
WAKE_NOW = (
    f"UPDATE trexec_instances SET status = 'scheduled', run_at = {NOW}, updated_at = {NOW}"
    " WHERE id = %s"
)
COMPLETE_CHILDREN = (
    f"UPDATE trexec_instances SET status = %s, step = %s, state = %s, attempt = 1,"
    f" run_at = CASE WHEN %s THEN {NOW} END, awaits = '{{}}', rate_limit = NULL, weight = 1,"
    " pending_children = %s, child_count = child_count + %s, lease_expires_at = NULL,"
    f" updated_at = {NOW} WHERE id = %s"
)
COMPLETE_DONE = (
    "UPDATE trexec_instances i SET status = 'done', result = c.result, run_at = NULL,"
    " awaits = '{}', rate_limit = NULL, lease_expires_at = NULL, updated_at = " + NOW + ""
    " FROM unnest(%s::bigint[], %s::text[]) AS c(id, result)"
    " WHERE i.id = c.id AND i.id = ANY(%s)"
)
COMPLETE_STOP = (
    "UPDATE trexec_instances i SET status = 'stopped', error = c.error, run_at = NULL,"
    " awaits = '{}', rate_limit = NULL, lease_expires_at = NULL, updated_at = " + NOW + ""
    " FROM unnest(%s::bigint[], %s::text[]) AS c(id, error)"
    " WHERE i.id = c.id AND i.id = ANY(%s)"
)
CONSUME_SIGNALS = (
    "DELETE FROM trexec_signals s USING unnest(%s::bigint[], %s::bigint[]) AS c(id, instance_id)"
    " WHERE s.id = c.id AND s.instance_id = c.instance_id"
)
CLEAR_INBOXES = "DELETE FROM trexec_signals WHERE instance_id = ANY(%s)"
# A batch may finish several children of one parent: count them per parent.
# Parents are locked in id order first (LOCK_ROWS): two batches never deadlock.
PARENTS_CHILDREN_FINISHED = (
    "UPDATE trexec_instances p SET pending_children = pending_children - c.n,"
    " status = CASE WHEN pending_children - c.n <= 0 THEN 'scheduled' ELSE status END,"
    f" run_at = CASE WHEN pending_children - c.n <= 0 THEN {NOW} ELSE run_at END,"
    f" updated_at = {NOW}"
    " FROM (SELECT id, count(*)::int AS n FROM unnest(%s::bigint[]) AS u(id) GROUP BY id) c"
    " WHERE p.id = c.id AND p.status = 'waiting_children'"
    " RETURNING p.id, p.status"
)
LOCK_ROWS = "SELECT id FROM trexec_instances WHERE id = ANY(%s) ORDER BY id FOR UPDATE"

# --- signals (spec §5.6) ------------------------------------------------------
TARGET_BY_ID = "SELECT id, status, awaits FROM trexec_instances WHERE id = %s FOR UPDATE"
TARGET_BY_KEY = (
    "SELECT id, status, awaits FROM trexec_instances WHERE key = %s"
    " AND status NOT IN ('done', 'stopped', 'cancelled') FOR UPDATE"
)
DEDUP_GET = "SELECT signal_id FROM trexec_signal_dedup WHERE instance_id = %s AND dedup_key = %s"
DEDUP_SET = (
    "INSERT INTO trexec_signal_dedup (instance_id, dedup_key, signal_id) VALUES (%s, %s, %s)"
)
# Without a dedup key, the target's lock and the insert are one statement (one
# round trip fewer on the signal -> next step path, spec §8.8.4): the CTE locks
# the row (its latest version) and inserts only into a live target.
_DELIVER_TO = (
    "WITH t AS ({target}), s AS (INSERT INTO trexec_signals"
    " (instance_id, name, payload, dedup_key, created_at)"
    f" SELECT id, %s, %s, NULL, {NOW} FROM t"
    " WHERE status NOT IN ('done', 'stopped', 'cancelled') RETURNING id)"
    " SELECT t.id, t.status, t.awaits, (SELECT id FROM s) FROM t"
)
DELIVER_BY_ID = _DELIVER_TO.format(target=TARGET_BY_ID)
DELIVER_BY_KEY = _DELIVER_TO.format(target=TARGET_BY_KEY)
DELIVER_SIGNAL = (
    "INSERT INTO trexec_signals (instance_id, name, payload, dedup_key, created_at)"
    f" VALUES (%s, %s, %s, %s, {NOW}) RETURNING id"
)

# --- cancel -------------------------------------------------------------------
TARGET_PARENT_BY_ID = "SELECT id, status, parent_id FROM trexec_instances WHERE id = %s FOR UPDATE"
TARGET_PARENT_BY_KEY = (
    "SELECT id, status, parent_id FROM trexec_instances WHERE key = %s"
    " AND status NOT IN ('done', 'stopped', 'cancelled') FOR UPDATE"
)
CANCEL = (
    "UPDATE trexec_instances SET status = 'cancelled', run_at = NULL,"
    f" lease_expires_at = NULL, awaits = '{{}}', updated_at = {NOW} WHERE id = %s"
)

# --- prune (spec §5.15) ---------------------------------------------------------
# Roots old enough, by id after a keyset cursor (a primary-key range scan).
PRUNE_ROOTS = (
    "SELECT id FROM trexec_instances i WHERE id > %(after)s AND status = ANY(%(statuses)s)"
    f" AND updated_at < {NOW} - make_interval(secs => %(older_than)s)"
    " AND (parent_id IS NULL"
    " OR NOT EXISTS (SELECT 1 FROM trexec_instances p WHERE p.id = i.parent_id))"
    " ORDER BY id LIMIT %(limit)s"
)
# Each root's tree: (root, id, status) of the root and every descendant.
PRUNE_TREES = (
    "WITH RECURSIVE tree (root, id, status) AS ("
    "SELECT id, id, status FROM trexec_instances WHERE id = ANY(%s)"
    " UNION SELECT t.root, c.id, c.status FROM tree t"
    " JOIN trexec_instances c ON c.parent_id = t.id)"
    " SELECT root, id, status FROM tree"
)
# The finished trees found are locked in id order (spec §8.8.2); then no child can
# join them (an insert locks its parent first). PRUNE_JOINED finds the members
# that got a child before the lock: their trees are kept.
PRUNE_LOCK = "SELECT id FROM trexec_instances WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
PRUNE_JOINED = (
    "SELECT DISTINCT parent_id FROM trexec_instances WHERE parent_id = ANY(%s) AND NOT id = ANY(%s)"
)
PRUNE_SIGNALS = "DELETE FROM trexec_signals WHERE instance_id = ANY(%s)"
PRUNE_DEDUP = "DELETE FROM trexec_signal_dedup WHERE instance_id = ANY(%s)"
PRUNE_INSTANCES = (
    "DELETE FROM trexec_instances WHERE id = ANY(%s)"
    " AND status IN ('done', 'stopped', 'cancelled') RETURNING id"
)

# --- reads --------------------------------------------------------------------
GET_BY_ID = f"SELECT {INSTANCE_COLUMNS} FROM trexec_instances WHERE id = %s"
GET_BY_KEY = (
    f"SELECT {INSTANCE_COLUMNS} FROM trexec_instances WHERE key = %s"
    " ORDER BY status IN ('done', 'stopped', 'cancelled'), id DESC LIMIT 1"
)
INBOX = f"SELECT {SIGNAL_COLUMNS} FROM trexec_signals WHERE instance_id = %s ORDER BY id"
CHILDREN = f"SELECT {INSTANCE_COLUMNS} FROM trexec_instances WHERE parent_id = %s ORDER BY id"
LIST = f"SELECT {INSTANCE_COLUMNS} FROM trexec_instances"  # filters: _store_rules.list_query
