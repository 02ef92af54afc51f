"""The PostgreSQL store's SQL, one constant per operation of the spec (spec §5.2, §8).

It mirrors ``_sqlite_sql.py``; the stores differ only in dialect. Every
connection's ``search_path`` is the store's schema, so names are unqualified;
tables carry a ``trexec_`` prefix because the default schema is ``public``.
Times are ``timestamptz`` of the *database's* clock (spec §8.6.1): ``NOW`` below
is the only source of "now"; rows are read back as epoch seconds (float).
"""

from __future__ import annotations

from ._postgres_schema import MIGRATIONS as MIGRATIONS

#: The database clock (spec §8.6.1). ``trexec_now()`` is ``now()`` (the transaction's
#: start time) plus an offset that only tests set (``trexec.clock_offset``).
NOW = "trexec_now()"

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
    f" {epoch('updated_at')}, priority, concurrency_key"
)
SIGNAL_COLUMNS = f"id, name, payload, dedup_key, {epoch('created_at')}"

# NOTIFY the store's channel: delivered at commit, collapsed within a transaction
# (spec §8.5.1). The payload is empty: a woken worker just claims again.
NOTIFY = "SELECT pg_notify(%s, '')"

# --- insert (spec §5.3) -------------------------------------------------------
INSERT = (
    "INSERT INTO trexec_instances (machine, version, step, status, state, key, parent_id,"
    " run_at, created_at, updated_at, priority, concurrency_key, concurrency_limit,"
    " trace_context)"
    f" SELECT machine, version, step, 'scheduled', state, key, parent_id,"
    f" {NOW} + make_interval(secs => delay), {NOW}, {NOW}, priority, ckey, climit, trace"
    " FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
    " %s::float8[], %s::int[], %s::text[], %s::int[], %s::text[]) WITH ORDINALITY"
    " AS i(machine, version, step, state, key, parent_id, delay, priority, ckey, climit,"
    " trace, n) ORDER BY n"
    " RETURNING id"
)
# A key a live instance holds skips that row (spec §5.4.10: effects never clash).
INSERT_SKIP_LIVE = INSERT.replace(" RETURNING id", " ON CONFLICT DO NOTHING RETURNING id")
LOCK_PARENTS = "SELECT id FROM trexec_instances WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
PARENT_ADD_CHILDREN = (
    "UPDATE trexec_instances p SET child_count = child_count + c.n,"
    " pending_children = pending_children"
    " + CASE WHEN status = 'waiting_children' THEN c.n ELSE 0 END"
    " FROM unnest(%s::bigint[], %s::int[]) AS c(id, n) WHERE p.id = c.id"
)

# --- claim (spec §5.5, §11) --------------------------------------------------
# spec §8.7.1, §11.1: one ordered scan of trexec_instances_claim per machine this
# worker runs (LATERAL), merged by (priority DESC, run_at, id). Each scan locks at
# most `limit` rows; the rows the merge leaves out are unlocked at commit.
_MACHINES = "unnest(%(machines)s::text[], %(versions)s::int[]) AS m(machine, version)"
#: The claim index's condition (migration 4): runnable, and not blocked by a key.
_RUNNABLE = "status IN ('scheduled', 'awaiting') AND NOT key_blocked"


def _runnable(columns: str) -> str:
    return (
        f"SELECT r.* FROM {_MACHINES}, LATERAL (SELECT {columns} FROM trexec_instances"
        " WHERE machine = m.machine AND version = m.version"
        f" AND {_RUNNABLE} AND run_at <= {NOW}"
        " ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) r"
        " ORDER BY r.priority DESC, r.run_at, r.id LIMIT %(limit)s"
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
# spec §11.2: a candidate with a concurrency key is not claimed here: it comes
# back (locked, `claimed` false) for keys.admit, which claims it with CLAIM_ROWS.
# spec §5.5.13: what a kept row returns, as a claim returns it (the inbox only
# for kept rows: CASE evaluates the subquery lazily).
_KEPT = ", ".join("i." + c for c in _CLAIMED_COLUMNS.split(", ")) + (
    ", CASE WHEN d.kept THEN (SELECT json_agg(json_build_array(s.id, s.name, s.payload,"
    f" s.dedup_key, {epoch('s.created_at')}) ORDER BY s.id) FROM trexec_signals s"
    " WHERE s.instance_id = i.id) END"
)
CLAIM = (
    f"WITH c AS ({_runnable('id, priority, run_at, concurrency_key, concurrency_limit')}),"
    f" u AS (UPDATE trexec_instances i SET {_CLAIM_SET} FROM c"
    " WHERE i.id = c.id AND c.concurrency_key IS NULL"
    f" RETURNING {_CLAIMED}, c.priority, c.run_at)"
    " SELECT true, u.*, NULL, NULL FROM u UNION ALL"
    " SELECT false, c.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " c.priority, c.run_at, c.concurrency_key, c.concurrency_limit"
    " FROM c WHERE c.concurrency_key IS NOT NULL"
)
# spec §8.7.2: with rate limits, lock candidates, then buckets in key order, then claim.
_CANDIDATE_COLUMNS = "id, priority, run_at, rate_limit, weight, concurrency_key, concurrency_limit"
CLAIM_CANDIDATES = (
    "SELECT c.id, c.rate_limit, c.weight, c.concurrency_key, c.concurrency_limit FROM"
    f" ({_runnable(_CANDIDATE_COLUMNS)}) c ORDER BY c.priority DESC, c.run_at, c.id"
)
# spec §11.2.3: the key's serialization point. Claims only try (a claim never
# waits, so never deadlocks); completions wait, in key order.
_KEY_LOCK = "hashtextextended('trexec.key.' || k, 0)"
KEYS_TRY_LOCK = (
    f"SELECT k, pg_try_advisory_xact_lock({_KEY_LOCK}) FROM unnest(%s::text[]) AS k ORDER BY k"
)
KEYS_RUNNING = (  # a statement after the lock: its snapshot sees every earlier claim
    "SELECT k, (SELECT count(*) FROM trexec_instances WHERE concurrency_key = k"
    " AND status = 'running') FROM unnest(%s::text[]) AS k"
)
KEYS_BLOCK = "UPDATE trexec_instances SET key_blocked = true WHERE id = ANY(%s)"

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

# spec §11.1.3: the earliest run_at of each machine, from the claim index: a loose
# scan of the machine's distinct priorities (one probe each), then the first row
# of each priority in run_at order. No index of its own (spec §8.7.3).
NEXT_DUE = (
    "WITH RECURSIVE p(machine, version, priority) AS ("
    " SELECT m.machine, m.version, (SELECT max(priority) FROM trexec_instances"
    f" WHERE machine = m.machine AND version = m.version AND {_RUNNABLE})"
    " FROM unnest(%s::text[], %s::int[]) AS m(machine, version)"
    " UNION ALL SELECT p.machine, p.version, (SELECT max(priority) FROM trexec_instances"
    f" WHERE machine = p.machine AND version = p.version AND {_RUNNABLE}"
    " AND priority < p.priority) FROM p WHERE p.priority IS NOT NULL)"
    # greatest() ignores NULL: without the CASE "nothing due" would read as "due
    # now" and an idle picker would spin on claim + next_due.
    " SELECT CASE WHEN min(r.run_at) IS NULL THEN NULL"
    f" ELSE greatest(0, {epoch('min(r.run_at) - ' + NOW)}) END"
    " FROM p, LATERAL (SELECT run_at FROM trexec_instances WHERE machine = p.machine"
    f" AND version = p.version AND {_RUNNABLE} AND priority = p.priority"
    " AND run_at IS NOT NULL ORDER BY run_at LIMIT 1) r WHERE p.priority IS NOT NULL"
)

#: spec §12.3.2: the distinct machines of the table, a loose scan of
#: ``(machine, status, id)`` (one probe per machine). Prefixes the statements
#: that look at one status across every machine (the reaper, the backlog, the
#: dashboard's status filter): no index on ``status`` alone (spec §8.7.3).
MACHINES_CTE = (
    "WITH RECURSIVE ms(machine) AS ((SELECT machine FROM trexec_instances"
    " ORDER BY machine LIMIT 1) UNION ALL SELECT (SELECT i.machine FROM trexec_instances i"
    " WHERE i.machine > ms.machine ORDER BY i.machine LIMIT 1) FROM ms"
    " WHERE ms.machine IS NOT NULL)"
)
MACHINES = f"{MACHINES_CTE} SELECT machine FROM ms WHERE machine IS NOT NULL"
_EVERY_MACHINE = "machine = ANY(ARRAY(SELECT machine FROM ms WHERE machine IS NOT NULL))"

# --- leases (spec §5.8) -------------------------------------------------------
_LEASES = "unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS l(id, token)"
# Rows are locked in id order, as complete() locks them: the two never deadlock.
_LOCKED_IN_ORDER = "(SELECT id FROM trexec_instances WHERE id = ANY({}) ORDER BY id FOR UPDATE)"
HEARTBEAT = (
    f"UPDATE trexec_instances i SET lease_expires_at = {NOW} + make_interval(secs => %(lease)s)"
    f" FROM {_LEASES} WHERE i.id = l.id AND i.token = l.token AND i.status = 'running'"
    f" AND i.id IN {_LOCKED_IN_ORDER.format('%(ids)s')} RETURNING i.id"
)
# spec §5.5.12: ctx.save, fenced like a commit.
SAVE_STATE = (
    f"UPDATE trexec_instances SET state = %s, updated_at = {NOW}"
    " WHERE id = %s AND token = %s AND status = 'running' RETURNING id"
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
    f"{MACHINES_CTE} UPDATE trexec_instances i SET status = 'scheduled', run_at = {NOW},"
    f" lease_expires_at = NULL, attempt = attempt + 1, updated_at = {NOW}"
    f" FROM (SELECT id FROM trexec_instances WHERE {_EVERY_MACHINE} AND status = 'running'"
    f" AND lease_expires_at < {NOW} ORDER BY id FOR UPDATE SKIP LOCKED) e"
    " WHERE i.id = e.id RETURNING i.id, i.machine, i.step, i.attempt"
)

# --- complete (spec §5.4) -----------------------------------------------------
# spec §8.8.1: lock every row the batch names, in id order (no deadlock between
# batches), after the advisory locks of their concurrency keys in key order,
# before any slot-freed trigger takes them row by row (spec §11.2.3): two
# completions never deadlock on them, and it costs no extra round trip.
FENCE = (
    f"WITH k AS (SELECT pg_advisory_xact_lock({_KEY_LOCK}) FROM (SELECT DISTINCT"
    " concurrency_key AS k FROM trexec_instances WHERE id = ANY(%(ids)s)"
    " AND concurrency_key IS NOT NULL ORDER BY 1) s)"
    " SELECT id, status, token, parent_id FROM trexec_instances"
    " WHERE id = ANY(%(ids)s) AND (SELECT count(*) FROM k) >= 0 ORDER BY id FOR UPDATE"
)
# spec §8.8.5: the common batch (only next/done/stop commits, no effects, no
# consumed signals, each instance once) in ONE statement: FENCE's locks (key
# locks in key order, then rows in id order) and the fenced updates of every
# kind. The batch travels as one JSON array (a cheaper parameter than eight
# arrays); trexec_now() is read once. Returns FENCE's rows: the caller derives
# each commit's status from them as CompleteBatch.add does. The finished rows'
# inboxes are cleared by a LATER statement (CLEAR_INBOXES): this one's snapshot
# predates its row locks, so it would miss a signal committed while it waited.
COMPLETE_SIMPLE = (
    "WITH c AS MATERIALIZED (SELECT (e->>0)::bigint AS id, (e->>1)::bigint AS token,"
    " e->>2 AS kind, e->>3 AS step, e->>4 AS state, e->>5 AS rate_limit,"
    " (e->>6)::int AS weight, e->>7 AS out FROM jsonb_array_elements(%(batch)s::jsonb) AS e),"
    f" t AS MATERIALIZED (SELECT {NOW} AS now),"
    f" k AS (SELECT pg_advisory_xact_lock({_KEY_LOCK}) FROM (SELECT DISTINCT"
    " concurrency_key AS k FROM trexec_instances WHERE id = ANY(ARRAY(SELECT id FROM c))"
    " AND concurrency_key IS NOT NULL ORDER BY 1) s),"
    " f AS (SELECT id, status, token, parent_id, priority, concurrency_key FROM trexec_instances"
    " WHERE id = ANY(ARRAY(SELECT id FROM c)) AND (SELECT count(*) FROM k) >= 0"
    " ORDER BY id FOR UPDATE),"
    # The commits whose row this transaction holds (fenced, spec §5.8.2).
    " b AS MATERIALIZED (SELECT c.*, f.priority, f.concurrency_key FROM c JOIN f"
    " ON f.id = c.id AND f.status = 'running' AND f.token = c.token),"
    # spec §5.5.13: a 'keep' row stays running unless its key, its next step's
    # rate limit or a higher priority sends it back to the queue. The priority
    # to reach (computed once, and only if the batch has a 'keep' row: CASE is
    # lazy) is the highest of the machines' runnable rows and of the rows this
    # batch puts back in the queue.
    f" top AS (SELECT GREATEST((SELECT max(r.priority) FROM {_MACHINES}, LATERAL"
    " (SELECT priority FROM trexec_instances WHERE machine = m.machine AND version = m.version"
    f" AND {_RUNNABLE} ORDER BY priority DESC LIMIT 1) r),"
    " (SELECT max(priority) FROM b WHERE kind = 'next' OR (kind = 'keep'"
    " AND (concurrency_key IS NOT NULL OR rate_limit IS NOT NULL)))) AS p),"
    " d AS MATERIALIZED (SELECT b.*, CASE WHEN b.kind = 'keep'"
    " THEN b.concurrency_key IS NULL AND b.rate_limit IS NULL"
    " AND b.priority >= COALESCE((SELECT p FROM top), 0) ELSE false END AS kept FROM b),"
    " u AS (UPDATE trexec_instances i SET"
    " status = CASE WHEN d.kept THEN 'running' WHEN d.kind IN ('next', 'keep')"
    " THEN 'scheduled' WHEN d.kind = 'done' THEN 'done' ELSE 'stopped' END,"
    " step = CASE WHEN d.kind IN ('next', 'keep') THEN d.step ELSE i.step END,"
    " state = CASE WHEN d.kind IN ('next', 'keep') THEN d.state"
    " ELSE COALESCE(d.state, i.state) END,"
    " attempt = CASE WHEN d.kind IN ('next', 'keep') THEN 1 ELSE i.attempt END,"
    " run_at = CASE WHEN d.kind IN ('next', 'keep') AND NOT d.kept THEN t.now END,"
    " awaits = '{}',"
    " rate_limit = CASE WHEN d.kind IN ('next', 'keep') THEN d.rate_limit END,"
    " weight = CASE WHEN d.kind IN ('next', 'keep') THEN d.weight ELSE i.weight END,"
    " result = CASE WHEN d.kind = 'done' THEN d.out ELSE i.result END,"
    " error = CASE WHEN d.kind = 'stop' THEN d.out ELSE i.error END,"
    " lease_expires_at = CASE WHEN d.kept THEN t.now + make_interval(secs => %(lease)s) END,"
    " updated_at = t.now FROM d, t WHERE i.id = d.id"
    f" RETURNING d.kept, {_KEPT})"
    " SELECT f.id, f.status, f.token, f.parent_id, u.* FROM f LEFT JOIN u ON u.kept AND u.id = f.id"
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
COMPLETE_AWAITS = (
    "UPDATE trexec_instances i SET status = 'awaiting', step = c.step, state = c.state,"
    f" attempt = 1, run_at = {NOW} + make_interval(secs => c.timeout),"
    " awaits = ARRAY(SELECT jsonb_array_elements_text(c.awaits::jsonb)), rate_limit = NULL,"
    f" weight = 1, lease_expires_at = NULL, updated_at = {NOW}"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::text[])"
    " AS c(id, step, state, timeout, awaits) WHERE i.id = c.id AND i.id = ANY(%s)"
)
WAKE_MATCHING = (
    f"UPDATE trexec_instances i SET status = 'scheduled', run_at = {NOW}, updated_at = {NOW}"
    " WHERE i.id = ANY(%s) AND i.status = 'awaiting' AND EXISTS (SELECT 1 FROM trexec_signals s"
    " WHERE s.instance_id = i.id AND s.name = ANY(i.awaits)) RETURNING i.id"
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
#: A finished instance's final state (spec §5.4.10, ``Effects.state``).
SET_STATE = "UPDATE trexec_instances SET state = %s WHERE id = %s"
# --- effects written in bulk (spec §5.4.10, _postgres_effects) ---
# FENCE, with each row's awaits: the targets of signal effects are locked too.
FENCE_EFFECTS = FENCE.replace(
    "SELECT id, status, token, parent_id FROM", "SELECT id, status, token, parent_id, awaits FROM"
)
DELIVER_SIGNALS = (
    "INSERT INTO trexec_signals (instance_id, name, payload, created_at)"
    f" SELECT instance_id, name, payload, {NOW}"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY"
    " AS s(instance_id, name, payload, n) ORDER BY n"
)
WAKE_MANY = (
    f"UPDATE trexec_instances SET status = 'scheduled', run_at = {NOW}, updated_at = {NOW}"
    " WHERE id = ANY(%s) AND status = 'awaiting'"
)
SET_STATES = (
    "UPDATE trexec_instances i SET state = s.state FROM unnest(%s::bigint[], %s::text[])"
    " AS s(id, state) WHERE i.id = s.id"
)
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

# --- schedules (spec §11.4): the statements of _schedule_store ------------------
# cursor / last_fired_at are epoch seconds (float8) of the database clock: a
# tick is a whole second, so the compare-and-set on cursor is exact.
_SCHEDULE_COLUMNS = "name, cron, tz, paused, cursor, last_fired_at"
SCHEDULE_ADD = (
    "INSERT INTO trexec_schedules (name, cron, tz, paused, cursor, last_fired_at, updated_at)"
    " VALUES (%s, %s, %s, 0, %s, NULL, %s) ON CONFLICT (name) DO NOTHING"
)
SCHEDULE_RETIME = (
    "UPDATE trexec_schedules SET cron = %s, tz = %s, updated_at = %s"
    " WHERE name = %s AND (cron <> %s OR tz <> %s)"
)
SCHEDULE_ROWS = f"SELECT {_SCHEDULE_COLUMNS} FROM trexec_schedules ORDER BY name"
# The compare-and-set: only the engine that read `cursor` = %s moves it (a
# concurrent one waits on the row lock, then sees the new cursor and matches nothing).
SCHEDULE_ADVANCE = (
    "UPDATE trexec_schedules SET cursor = %s, last_fired_at = %s, updated_at = %s"
    " WHERE name = %s AND cursor = %s AND paused = 0 RETURNING name"
)
SCHEDULE_PAUSE = (
    "UPDATE trexec_schedules SET cursor = CASE WHEN paused = 1 AND %s = 0 AND cursor < %s"
    " THEN %s ELSE cursor END, paused = %s, updated_at = %s WHERE name = %s"
    f" RETURNING {_SCHEDULE_COLUMNS}"
)
