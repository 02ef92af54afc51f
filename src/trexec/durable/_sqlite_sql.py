"""The SQLite store's SQL, one constant per operation of the spec (spec §5.2).

Times are REAL seconds of the store's clock. ``awaits`` is a JSON list of names.
"""

from __future__ import annotations

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS trexec_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE instances (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            machine TEXT NOT NULL,
            version INTEGER NOT NULL,
            step TEXT NOT NULL,
            status TEXT NOT NULL,
            state TEXT NOT NULL,
            result TEXT,
            error TEXT,
            attempt INTEGER NOT NULL DEFAULT 1,
            key TEXT,
            parent_id INTEGER,
            run_at REAL,
            awaits TEXT NOT NULL DEFAULT '[]',
            pending_children INTEGER NOT NULL DEFAULT 0,
            child_count INTEGER NOT NULL DEFAULT 0,
            token INTEGER NOT NULL DEFAULT 0,
            lease_expires_at REAL,
            rate_limit TEXT,
            weight INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE INDEX instances_runnable ON instances (run_at)
            WHERE status IN ('scheduled', 'awaiting')""",
        """CREATE INDEX instances_leases ON instances (lease_expires_at)
            WHERE status = 'running'""",
        """CREATE UNIQUE INDEX instances_live_key ON instances (key)
            WHERE key IS NOT NULL AND status NOT IN ('done', 'stopped', 'cancelled')""",
        "CREATE INDEX instances_key ON instances (key, id) WHERE key IS NOT NULL",
        "CREATE INDEX instances_parent ON instances (parent_id) WHERE parent_id IS NOT NULL",
        "CREATE INDEX instances_status ON instances (status, id)",
        """CREATE TABLE signals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            instance_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            payload TEXT NOT NULL,
            dedup_key TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX signals_instance ON signals (instance_id, id)",
        """CREATE TABLE signal_dedup (
            instance_id INTEGER NOT NULL,
            dedup_key TEXT NOT NULL,
            signal_id INTEGER NOT NULL,
            PRIMARY KEY (instance_id, dedup_key)
        )""",
        """CREATE TABLE rate_buckets (
            key TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ],
    # spec §12.3: the dashboard's filters, newest first, at any table size: with
    # these (and instances_status, instances_key) every filter combination of
    # Store.list is one index range scan in id order that stops after `limit`.
    2: [
        "CREATE INDEX IF NOT EXISTS instances_machine ON instances (machine, id)",
        "CREATE INDEX IF NOT EXISTS instances_machine_status ON instances (machine, status, id)",
    ],
    # spec §11: priorities and concurrency keys. A runnable row a claim found
    # blocked by its key (every slot taken) gets key_blocked = 1 and leaves the
    # claim and next_due indexes, so nobody scans or wakes for it again; the
    # trigger hands the freed slot to the next blocked rows of the key whenever
    # a row of the key leaves `running` (or is cancelled), in the same transaction.
    3: [
        "ALTER TABLE instances ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE instances ADD COLUMN concurrency_key TEXT",
        "ALTER TABLE instances ADD COLUMN concurrency_limit INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE instances ADD COLUMN key_blocked INTEGER NOT NULL DEFAULT 0",
        """CREATE INDEX instances_claim ON instances (priority DESC, run_at, id)
            WHERE status IN ('scheduled', 'awaiting') AND key_blocked = 0""",
        """CREATE INDEX instances_due ON instances (run_at)
            WHERE status IN ('scheduled', 'awaiting') AND key_blocked = 0""",
        "DROP INDEX IF EXISTS instances_runnable",
        """CREATE INDEX instances_slots ON instances (concurrency_key)
            WHERE status = 'running' AND concurrency_key IS NOT NULL""",
        """CREATE INDEX instances_blocked ON instances (concurrency_key, priority DESC, run_at, id)
            WHERE key_blocked = 1 AND status IN ('scheduled', 'awaiting')""",
        """CREATE TRIGGER instances_slot_freed AFTER UPDATE OF status ON instances
            WHEN OLD.concurrency_key IS NOT NULL AND NEW.status <> 'running'
                AND (OLD.status = 'running' OR NEW.status = 'cancelled')
            BEGIN
                UPDATE instances SET key_blocked = 0 WHERE id IN (
                    SELECT id FROM instances INDEXED BY instances_blocked
                    WHERE concurrency_key = OLD.concurrency_key AND key_blocked = 1
                    AND status IN ('scheduled', 'awaiting')
                    ORDER BY priority DESC, run_at, id LIMIT OLD.concurrency_limit);
            END""",
    ],
    # spec §11.4: one row per schedule name; `cursor` is the last tick fired.
    4: [
        """CREATE TABLE IF NOT EXISTS schedules (
            name TEXT PRIMARY KEY,
            cron TEXT NOT NULL,
            tz TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            cursor REAL NOT NULL,
            last_fired_at REAL,
            updated_at REAL NOT NULL
        )""",
    ],
    # spec §14.2: the trace context stored with an instance; spec §5.16: the
    # live engines' announcements, for explain.
    5: [
        "ALTER TABLE instances ADD COLUMN trace_context TEXT",
        """CREATE TABLE IF NOT EXISTS trexec_engines (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            machines TEXT NOT NULL,
            holding TEXT NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ],
    # spec §12.3.2, §8.7.3: fewer index entries per step (as PostgreSQL migration
    # 7). The claim and the commit of a step each wrote 5-7 b-tree entries; the
    # dashboard's filters are served by (machine, status, id) alone, the reaper
    # by it too, next_due by the claim index.
    6: [
        "DROP INDEX IF EXISTS instances_status",
        "DROP INDEX IF EXISTS instances_machine",
        "DROP INDEX IF EXISTS instances_leases",
        "DROP INDEX IF EXISTS instances_due",
    ],
    # spec §5.11.8: a live instance's key in a column of its own. The unique
    # index on `key` filtered by status was rewritten (its entry deleted and
    # inserted again, the uniqueness checked) by every status change of a keyed
    # row, its claim included; `live_key` changes only when the row finishes.
    # The statements that finish a row clear it; the trigger clears it for any
    # other way a row could finish.
    7: [
        "ALTER TABLE instances ADD COLUMN live_key TEXT",
        """UPDATE instances SET live_key = key
            WHERE key IS NOT NULL AND status NOT IN ('done', 'stopped', 'cancelled')""",
        "DROP INDEX IF EXISTS instances_live_key",
        """CREATE UNIQUE INDEX instances_live_key ON instances (live_key)
            WHERE live_key IS NOT NULL""",
        """CREATE TRIGGER instances_key_freed AFTER UPDATE OF status ON instances
            WHEN NEW.live_key IS NOT NULL AND NEW.status IN ('done', 'stopped', 'cancelled')
            BEGIN
                UPDATE instances SET live_key = NULL WHERE id = NEW.id;
            END""",
    ],
}

INSTANCE_COLUMNS = (
    "id, machine, version, step, status, state, result, error, attempt, key, parent_id,"
    " awaits, pending_children, run_at, created_at, updated_at, priority, concurrency_key"
)

SCHEMA_VERSION_GET = "SELECT value FROM trexec_meta WHERE key = 'schema_version'"
SCHEMA_VERSION_SET = (
    "INSERT INTO trexec_meta (key, value) VALUES ('schema_version', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"

# --- insert (spec §5.3) -------------------------------------------------------
INSERT = (
    "INSERT INTO instances (machine, version, step, status, state, key, parent_id,"
    " run_at, created_at, updated_at, priority, concurrency_key, concurrency_limit,"
    " trace_context, live_key) VALUES (?1, ?2, ?3, 'scheduled', ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
    " ?11, ?12, ?13, ?5)"
)
PARENT_ADD_CHILD = (
    "UPDATE instances SET child_count = child_count + 1,"
    " pending_children = pending_children + (status = 'waiting_children')"
    " WHERE id = ?"
)

# --- claim (spec §5.5, §11) --------------------------------------------------
#: The claim index's condition (migration 3): runnable, and not blocked by a key.
_RUNNABLE = "status IN ('scheduled', 'awaiting') AND key_blocked = 0"
# spec §11.1: claim order is (priority DESC, run_at, id). The claim walks the
# distinct priorities of runnable rows from the highest down (one index probe
# each) and reads each priority's due rows in (run_at, id) order: rows due
# later never stand in the way, whatever their priority.
RUNNABLE_TOP_PRIORITY = (
    f"SELECT MAX(priority) FROM instances INDEXED BY instances_claim WHERE {_RUNNABLE}"
)
RUNNABLE_PRIORITY_BELOW = (
    "SELECT MAX(priority) FROM instances INDEXED BY instances_claim"
    f" WHERE {_RUNNABLE} AND priority < ?"
)
# The machine filter is appended as "(machine, version) IN (VALUES ...)". The
# planner would otherwise pick instances_machine_status and sort every runnable row.
CLAIM_CANDIDATES = (
    "SELECT id, status, rate_limit, weight, concurrency_key, concurrency_limit"
    " FROM instances INDEXED BY instances_claim"
    f" WHERE {_RUNNABLE} AND priority = ?"
    " AND run_at <= ? AND (machine, version) IN ({}) ORDER BY run_at, id LIMIT ?"
)
# spec §11.2: the slots a key's running rows hold.
KEY_RUNNING = (
    "SELECT COUNT(*) FROM instances INDEXED BY instances_slots"
    " WHERE concurrency_key = ? AND status = 'running'"
)
KEY_BLOCK = "UPDATE instances SET key_blocked = 1 WHERE id IN ({})"
# The ids are appended as "id IN (?, ...)": one statement claims the batch.
CLAIM_ROWS = (
    "UPDATE instances SET status = 'running', token = token + 1, lease_expires_at = ?,"
    " awaits = CASE WHEN status = 'awaiting' THEN '[]' ELSE awaits END, updated_at = ?"
    " WHERE id IN ({})"
    " RETURNING id, token, machine, version, step, attempt, state, key, parent_id,"
    " awaits, child_count, trace_context"
)
CLAIM_INBOX = (
    "SELECT instance_id, id, name, payload, dedup_key, created_at FROM signals"
    " WHERE instance_id IN ({}) ORDER BY id"
)
CHILDREN = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE parent_id = ? ORDER BY id"
THROTTLE_ROW = "UPDATE instances SET run_at = ? WHERE id = ?"
BUCKET_GET = "SELECT tokens, updated_at FROM rate_buckets WHERE key = ?"
BUCKET_SET = (
    "INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at"
)

# spec §11.1.3: the earliest run_at among the machines' runnable rows, from the
# claim index: a loose scan of the distinct priorities (one probe each), then
# each priority's rows in run_at order up to the first of these machines. Rows
# blocked by their key are not due (spec §11.2): no spinning on them. The
# machine filter is appended as "(machine, version) IN (VALUES ...)".
NEXT_DUE = (
    "WITH RECURSIVE p(priority) AS ("
    f"SELECT MAX(priority) FROM instances INDEXED BY instances_claim WHERE {_RUNNABLE}"
    " UNION ALL SELECT (SELECT MAX(priority) FROM instances INDEXED BY instances_claim"
    f" WHERE {_RUNNABLE} AND priority < p.priority) FROM p WHERE p.priority IS NOT NULL)"
    " SELECT MIN((SELECT run_at FROM instances INDEXED BY instances_claim"
    f" WHERE {_RUNNABLE} AND priority = p.priority AND run_at IS NOT NULL"
    " AND (machine, version) IN ({}) ORDER BY run_at LIMIT 1))"
    " FROM p WHERE p.priority IS NOT NULL"
)

#: spec §12.3.2: the distinct machines of the table, a loose scan of
#: ``instances_machine_status`` (one probe per machine). Prefixes the statements
#: that look at one status across every machine (the reaper, the backlog, the
#: dashboard's status filter): no index on ``status`` alone (spec §8.7.3).
MACHINES_CTE = (
    "WITH RECURSIVE ms(machine) AS (SELECT MIN(machine) FROM instances"
    " UNION ALL SELECT (SELECT machine FROM instances WHERE machine > ms.machine"
    " ORDER BY machine LIMIT 1) FROM ms WHERE ms.machine IS NOT NULL)"
)
MACHINES = f"{MACHINES_CTE} SELECT machine FROM ms WHERE machine IS NOT NULL"
_EVERY_MACHINE = "machine IN (SELECT machine FROM ms WHERE machine IS NOT NULL)"

# --- leases (spec §5.8) -------------------------------------------------------
HEARTBEAT = (
    "UPDATE instances SET lease_expires_at = ? WHERE id = ? AND token = ? AND status = 'running'"
)
# spec §5.5.12: ctx.save, fenced like a commit.
SAVE_STATE = (
    "UPDATE instances SET state = ?, updated_at = ?"
    " WHERE id = ? AND token = ? AND status = 'running'"
)
RELEASE = (
    "UPDATE instances SET status = 'scheduled', run_at = ?, lease_expires_at = NULL,"
    " attempt = attempt + ?, updated_at = ?"
    " WHERE id = ? AND token = ? AND status = 'running'"
)
REAP_EXPIRED = (
    # INDEXED BY: statistics from a table of one machine would pick a full scan.
    f"{MACHINES_CTE} UPDATE instances INDEXED BY instances_machine_status"
    " SET status = 'scheduled', run_at = ?,"
    " lease_expires_at = NULL, attempt = attempt + 1, updated_at = ?"
    f" WHERE {_EVERY_MACHINE} AND status = 'running' AND lease_expires_at < ?"
    " RETURNING id, machine, step, attempt"
)

# --- complete (spec §5.4) -----------------------------------------------------
FENCE = "SELECT status, token, parent_id FROM instances WHERE id = ?"
# Each COMPLETE_* statement is fenced (spec §5.8): it changes the row only while
# the commit's token holds it; no row changed means stale or cancelled.
COMPLETE_NEXT = (
    "UPDATE instances SET status = 'scheduled', step = ?, state = ?, attempt = 1, run_at = ?,"
    " awaits = '[]', rate_limit = ?, weight = ?, lease_expires_at = NULL, updated_at = ?"
    " WHERE id = ? AND token = ? AND status = 'running'"
)
COMPLETE_RETRY = (
    "UPDATE instances SET status = 'scheduled', state = ?, attempt = attempt + 1, run_at = ?,"
    " lease_expires_at = NULL, updated_at = ?"
    " WHERE id = ? AND token = ? AND status = 'running'"
)
COMPLETE_AWAIT = (
    "UPDATE instances SET status = 'awaiting', step = ?, state = ?, attempt = 1, run_at = ?,"
    " awaits = ?, rate_limit = NULL, weight = 1, lease_expires_at = NULL, updated_at = ?"
    " WHERE id = ? AND token = ? AND status = 'running'"
)
# No lost wake-up: a matching signal already in the inbox makes it runnable now.
AWAIT_MATCHING_SIGNAL = (
    "SELECT 1 FROM signals WHERE instance_id = ? AND name IN (SELECT value FROM json_each(?))"
    " LIMIT 1"
)
WAKE_NOW = "UPDATE instances SET status = 'scheduled', run_at = ?, updated_at = ? WHERE id = ?"
COMPLETE_CHILDREN = (
    "UPDATE instances SET status = ?, step = ?, state = ?, attempt = 1, run_at = ?,"
    " awaits = '[]', rate_limit = NULL, weight = 1, pending_children = ?,"
    " lease_expires_at = NULL, updated_at = ? WHERE id = ?"
)
COMPLETE_DONE = (
    "UPDATE instances SET status = 'done', result = ?, run_at = NULL, awaits = '[]',"
    " rate_limit = NULL, lease_expires_at = NULL, updated_at = ?, live_key = NULL"
    " WHERE id = ? AND token = ? AND status = 'running' RETURNING parent_id"
)
COMPLETE_STOP = (
    "UPDATE instances SET status = 'stopped', error = ?, run_at = NULL, awaits = '[]',"
    " rate_limit = NULL, lease_expires_at = NULL, updated_at = ?, live_key = NULL"
    " WHERE id = ? AND token = ? AND status = 'running' RETURNING parent_id"
)
CONSUME_SIGNAL = "DELETE FROM signals WHERE id = ? AND instance_id = ?"
# A batch's plain ``next`` and ``done`` commits (no effects, nothing consumed),
# one statement per kind: "VALUES (id, token, ...), ..." is appended. Fenced
# as the one-row statements; RETURNING names the rows that applied (spec §5.8).
COMPLETE_NEXT_MANY = (
    "UPDATE instances SET status = 'scheduled', step = v.column3, state = v.column4,"
    " attempt = 1, run_at = ?, awaits = '[]', rate_limit = v.column5, weight = v.column6,"
    " lease_expires_at = NULL, updated_at = ? FROM ({}) AS v"
    " WHERE instances.id = v.column1 AND instances.token = v.column2"
    " AND instances.status = 'running' RETURNING instances.id, instances.token"
)
# "VALUES (id, token, result, final state or NULL), ..." is appended: a done
# with its final state (spec §5.4.10, a workflow run's end) writes it in the
# same row update.
COMPLETE_DONE_MANY = (
    "UPDATE instances SET status = 'done', result = v.column3,"
    " state = COALESCE(v.column4, instances.state), run_at = NULL, awaits = '[]',"
    " rate_limit = NULL, lease_expires_at = NULL, live_key = NULL, updated_at = ? FROM ({}) AS v"
    " WHERE instances.id = v.column1 AND instances.token = v.column2"
    " AND instances.status = 'running' RETURNING instances.id, instances.token, instances.parent_id"
)
# spec §5.5.13: a batch's plain ``next`` commits that keep their lease: the row
# stays ``running`` (same token, so a fenced retry is idempotent) at its new
# step, leased until ``?``, and comes back as a claim would return it.
# "VALUES (id, token, step, state, weight), ..." is appended. No rate limit
# (the caller's filter), no concurrency key (its slot goes back through the
# queue), and a priority no runnable row beats (the last ``?``).
COMPLETE_KEEP_MANY = (
    "UPDATE instances SET step = v.column3, state = v.column4, attempt = 1, awaits = '[]',"
    " rate_limit = NULL, weight = v.column5, lease_expires_at = ?, updated_at = ? FROM ({}) AS v"
    " WHERE instances.id = v.column1 AND instances.token = v.column2"
    " AND instances.status = 'running' AND instances.concurrency_key IS NULL"
    " AND instances.priority >= ?"
    " RETURNING instances.id, instances.token, instances.machine, instances.version,"
    " instances.step, instances.attempt, instances.state, instances.key, instances.parent_id,"
    " instances.awaits, instances.child_count, instances.trace_context"
)
# The priority a kept row must reach: the highest runnable one, or of a row of
# the batch that goes back to the queue for its key ("id IN (...)" appended).
KEEP_TOP_PRIORITY = (
    "SELECT MAX(p) FROM (SELECT MAX(priority) AS p FROM instances INDEXED BY instances_claim"
    f" WHERE {_RUNNABLE} UNION ALL SELECT MAX(priority) FROM instances"
    " WHERE id IN ({}) AND concurrency_key IS NOT NULL)"
)
CLEAR_INBOXES = "DELETE FROM signals WHERE instance_id IN ({})"
# Whether any signal waits in any inbox: when none does (machines that take no
# signals), a claim reads no inbox and a batch of ends clears none. One probe
# of the table's first row instead of one per instance.
ANY_SIGNAL = "SELECT EXISTS (SELECT 1 FROM signals)"
CLEAR_INBOX = "DELETE FROM signals WHERE instance_id = ?"
PARENT_CHILD_FINISHED = (
    "UPDATE instances SET pending_children = pending_children - 1, updated_at = ?"
    " WHERE id = ? AND status = 'waiting_children'"
)
PARENT_RELEASE_BARRIER = (
    "UPDATE instances SET status = 'scheduled', run_at = ?, updated_at = ?"
    " WHERE id = ? AND status = 'waiting_children' AND pending_children <= 0"
)

# --- signals (spec §5.6) ------------------------------------------------------
TARGET_BY_ID = "SELECT id, status, awaits FROM instances WHERE id = ?"
#: A finished instance's final state (spec §5.4.10, ``Effects.state``).
SET_STATE = "UPDATE instances SET state = ? WHERE id = ?"
TARGET_BY_KEY = (
    "SELECT id, status, awaits FROM instances WHERE key = ?"
    " AND status NOT IN ('done', 'stopped', 'cancelled')"
)
DEDUP_GET = "SELECT signal_id FROM signal_dedup WHERE instance_id = ? AND dedup_key = ?"
DEDUP_SET = "INSERT INTO signal_dedup (instance_id, dedup_key, signal_id) VALUES (?, ?, ?)"
DELIVER_SIGNAL = (
    "INSERT INTO signals (instance_id, name, payload, dedup_key, created_at) VALUES (?, ?, ?, ?, ?)"
)

# --- cancel -------------------------------------------------------------------
CANCEL = (
    "UPDATE instances SET status = 'cancelled', run_at = NULL, lease_expires_at = NULL,"
    " awaits = '[]', live_key = NULL, updated_at = ? WHERE id = ?"
)

# --- prune (spec §5.15) ---------------------------------------------------------
# Id lists and statuses are JSON arrays (one parameter, any length).
# Roots old enough, by id after a keyset cursor: NOT INDEXED makes it a rowid range
# scan that stops after `limit` rows (instances_status would sort every match).
PRUNE_ROOTS = (
    "SELECT id FROM instances i NOT INDEXED WHERE id > ? AND updated_at < ?"
    " AND status IN (SELECT value FROM json_each(?))"
    " AND (parent_id IS NULL OR NOT EXISTS (SELECT 1 FROM instances p WHERE p.id = i.parent_id))"
    " ORDER BY id LIMIT ?"
)
# Each root's tree: (root, id, status) of the root and every descendant.
PRUNE_TREES = (
    "WITH RECURSIVE tree (root, id, status) AS ("
    "SELECT id, id, status FROM instances WHERE id IN (SELECT value FROM json_each(?))"
    " UNION SELECT tree.root, c.id, c.status FROM tree JOIN instances c ON c.parent_id = tree.id)"
    " SELECT root, id, status FROM tree"
)
PRUNE_SIGNALS = "DELETE FROM signals WHERE instance_id IN (SELECT value FROM json_each(?))"
PRUNE_DEDUP = "DELETE FROM signal_dedup WHERE instance_id IN (SELECT value FROM json_each(?))"
PRUNE_INSTANCES = (
    "DELETE FROM instances WHERE id IN (SELECT value FROM json_each(?))"
    " AND status IN ('done', 'stopped', 'cancelled')"
)

# --- reads --------------------------------------------------------------------
GET_BY_ID = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?"
GET_BY_KEY = (
    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE key = ?"
    " ORDER BY status IN ('done', 'stopped', 'cancelled'), id DESC LIMIT 1"
)
INBOX = (
    "SELECT id, name, payload, dedup_key, created_at FROM signals WHERE instance_id = ? ORDER BY id"
)
LIST = f"SELECT {INSTANCE_COLUMNS} FROM instances"  # filters: _store_rules.list_query

# --- schedules (spec §11.4): the statements of _schedule_store ------------------
_SCHEDULE_COLUMNS = "name, cron, tz, paused, cursor, last_fired_at"
SCHEDULE_ADD = (
    "INSERT INTO schedules (name, cron, tz, paused, cursor, last_fired_at, updated_at)"
    " VALUES (?, ?, ?, 0, ?, NULL, ?) ON CONFLICT (name) DO NOTHING"
)
SCHEDULE_RETIME = (
    "UPDATE schedules SET cron = ?, tz = ?, updated_at = ?"
    " WHERE name = ? AND (cron <> ? OR tz <> ?)"
)
SCHEDULE_ROWS = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
# The compare-and-set: only the engine that read `cursor` = ? moves it.
SCHEDULE_ADVANCE = (
    "UPDATE schedules SET cursor = ?, last_fired_at = ?, updated_at = ?"
    " WHERE name = ? AND cursor = ? AND paused = 0 RETURNING name"
)
SCHEDULE_PAUSE = (
    "UPDATE schedules SET cursor = CASE WHEN paused = 1 AND ? = 0 AND cursor < ? THEN ?"
    " ELSE cursor END, paused = ?, updated_at = ? WHERE name = ?"
    f" RETURNING {_SCHEDULE_COLUMNS}"
)
