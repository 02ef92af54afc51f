"""What the dashboard reads from a store, as plain data (spec §12.2, §12.3).

Filters arrive as query strings and are checked here (a bad one is an
``InvalidArgument`` naming it, which the app answers with 400). Rows become
plain dicts: JSON columns parsed, times as epoch seconds; the pages render these
dicts and the JSON API returns them as they are, so both show the same data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from .. import _validate
from ..durable._records import STATUSES, TERMINAL, InstanceRecord, SignalRecord
from ..durable._store import Store

__all__ = ["Filters", "instance_detail", "instance_page", "parse_filters"]

#: Rows per page unless ``limit`` says otherwise, and the most ``limit`` may ask.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Ids and cursors are SQL bigints: a larger number names no instance.
MAX_ID = 2**63 - 1
#: The longest ``machine``/``key`` filter accepted (longer ones name nothing useful).
MAX_TEXT = 500
#: Seconds a page waits for the store before answering 503 (spec §12.6).
STORE_TIMEOUT = 10.0
FILTER_NAMES = ("status", "machine", "key", "limit", "before")


@attrs.frozen
class Filters:
    """The instance list's filters: exact ``status``/``machine``/``key``, at most
    ``limit`` rows with ids below ``before`` (the cursor of the next page)."""

    status: str | None = None
    machine: str | None = None
    key: str | None = None
    limit: int = DEFAULT_LIMIT
    before: int | None = None

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters (with ``changes``) as query parameters, defaults left out."""
        values = attrs.asdict(attrs.evolve(self, **changes))
        if values["limit"] == DEFAULT_LIMIT:
            del values["limit"]
        return {name: str(value) for name, value in values.items() if value is not None}


def _whole(name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        _validate.fail(name, text, f"a whole number from {low} to {high}")
    return int(text)


def parse_filters(params: Mapping[str, str], *, extra: tuple[str, ...] = ()) -> Filters:
    """Filters from query parameters (an empty value is no filter, as an empty
    form field sends). Raises :class:`~trexec.InvalidArgument` for an unknown
    parameter (other than ``extra``), a status that is not one of the seven, an
    overlong text, or a ``limit``/``before`` that is not a whole number in range."""
    for name in params:
        if name not in FILTER_NAMES and name not in extra:
            _validate.fail("parameter", name, "one of " + ", ".join(FILTER_NAMES))
    values = {n: params[n] for n in FILTER_NAMES if params.get(n, "") != ""}
    status = values.get("status")
    if status is not None:
        _validate.one_of("status", status, STATUSES)
    for name in ("machine", "key"):
        if len(values.get(name, "")) > MAX_TEXT:
            _validate.fail(name, values[name][:40] + "...", f"at most {MAX_TEXT} characters")
    limit = values.get("limit")
    before = values.get("before")
    return Filters(
        status=status,
        machine=values.get("machine"),
        key=values.get("key"),
        limit=DEFAULT_LIMIT if limit is None else _whole("limit", limit, 1, MAX_LIMIT),
        before=None if before is None else _whole("before", before, 1, MAX_ID),
    )


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # not written by trexec: show it as it is
        return text


def summary(record: InstanceRecord) -> dict[str, Any]:
    """An instance row as plain data (``state``/``result`` parsed from JSON)."""
    return {
        "id": record.id,
        "machine": record.machine,
        "version": record.version,
        "step": record.step,
        "status": record.status,
        "live": record.status not in TERMINAL,
        "attempt": record.attempt,
        "key": record.key,
        "parent_id": record.parent_id,
        "priority": record.priority,  # spec §11
        "concurrency_key": record.concurrency_key,
        "awaits": list(record.awaits),
        "pending_children": record.pending_children,
        "run_at": record.run_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "state": _json(record.state),
        "result": _json(record.result),
        "error": record.error,
    }


def _signal(record: SignalRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "payload": _json(record.payload),
        "dedup_key": record.dedup_key,
        "created_at": record.created_at,
    }


def is_run(machine: str) -> bool:
    """A workflow run's instance (``workflow:<name>``), not one of its steps."""
    return machine.startswith("workflow:") and not machine.endswith(":step")


_RECORD = {
    "status": "pending",
    "attempts": 0,
    "result": None,
    "error": None,
    "compensation": None,
    "compensation_error": None,
    "duration": None,
}


def run_view(state: Any, *, claimed: bool = False) -> dict[str, Any] | None:
    """A workflow run's state (spec §6.5) as its step table, graph edges and
    history; None if the state does not look like a run's. ``claimed``: the run
    instance is running now, so its ready steps are running inline in it (spec
    §6.6.2) and show as ``running``."""
    if not isinstance(state, dict) or not isinstance(state.get("steps"), dict):
        return None
    # spec §6.5.3: a step record or history line leaves out its None fields.
    steps = [
        {"step": str(name), **_RECORD, **(rec if isinstance(rec, dict) else {})}
        for name, rec in state["steps"].items()
    ]
    after = state.get("after")
    after = after if isinstance(after, dict) else {}
    if claimed and state.get("phase") == "running":
        done = {row["step"] for row in steps if row["status"] == "done"}
        for row in steps:
            deps = after.get(row["step"])
            if row["status"] == "pending" and isinstance(deps, list) and done.issuperset(deps):
                row["status"] = "running"
    history = state.get("history")
    history = history if isinstance(history, list) else []
    return {
        "workflow": state.get("workflow"),
        "phase": state.get("phase"),
        "failure": state.get("failure"),
        "input": state.get("input"),
        "steps": steps,
        "after": {str(k): [str(d) for d in v] for k, v in after.items() if isinstance(v, list)},
        "history": [{"step": None, "detail": None, **h} for h in history if isinstance(h, dict)],
    }


async def instance_page(store: Store, filters: Filters) -> dict[str, Any]:
    """One page of instances, newest first: ``instances`` and ``next_before``
    (the cursor of the next page, None on the last one)."""
    with trio.fail_after(STORE_TIMEOUT):
        records = await store.list(
            status=filters.status,
            machine=filters.machine,
            key=filters.key,
            limit=filters.limit + 1,  # one more tells whether a next page exists
            before_id=filters.before,
            newest_first=True,
        )
    page = records[: filters.limit]
    more = len(records) > filters.limit
    return {
        "instances": [summary(r) for r in page],
        "next_before": page[-1].id if more and page else None,
    }


async def instance_detail(store: Store, id_: int) -> dict[str, Any] | None:
    """Everything about one instance: its row, inbox, children, parent (a
    summary or None) and, for a workflow run, ``run`` (:func:`run_view`).
    None if there is no such instance."""
    if id_ > MAX_ID:
        return None
    with trio.fail_after(STORE_TIMEOUT):
        record = await store.get(id_)
        if record is None:
            return None
        inbox = await store.inbox(id_)
        children = await store.children(id_)
        parent = None if record.parent_id is None else await store.get(record.parent_id)
    detail = summary(record)
    detail["inbox"] = [_signal(s) for s in inbox]
    detail["children"] = [summary(c) for c in children]
    detail["parent"] = None if parent is None else summary(parent)
    detail["run"] = (
        run_view(detail["state"], claimed=record.status == "running")
        if is_run(record.machine)
        else None
    )
    return detail
