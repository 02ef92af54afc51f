"""``trexec demo`` (spec §9): the gateway over real HTTP, the journal, and the command
itself run as a real subprocess, interrupted with SIGINT and resumed."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from rich.console import Console

from trexec._demo.gateway import Gateway, serve_gateway
from trexec._demo.journal import Tally, read_events, summarize
from trexec._demo.orders import make_orders, order_id
from trexec._demo.session import DemoState, Options, _redact, _same_options
from trexec._demo.ui import show_progress

DEMO = [sys.executable, "-c", "from trexec._cli import main; main()", "demo"]
TERMINAL = {"completed", "compensated_run", "failed"}


def run_demo(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [*DEMO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"trexec demo {' '.join(args)} still running after {timeout} s:\n{exc.stdout}")


def terminal_events(path: Path) -> dict[str, list[str]]:
    ends: dict[str, list[str]] = {}
    for event in read_events(path):
        if event["kind"] in TERMINAL:
            ends.setdefault(event["order"], []).append(event["kind"])
    return ends


# --- the gateway (spec §9.2) -----------------------------------------------------


async def test_gateway_authorization_goes_processing_then_decided_over_http() -> None:
    gateway = Gateway(seed=7, delay=(0.05, 0.05), decline_rate=0.0, fault_rate=0.0)
    async with serve_gateway(gateway) as url, httpx.AsyncClient(base_url=url) as client:
        assert url.startswith("http://127.0.0.1:")
        created = await client.post("/authorizations", json={"order": "o1", "amount_cents": 500})
        assert created.status_code == 201
        assert created.json()["status"] == "processing"
        again = await client.post("/authorizations", json={"order": "o1", "amount_cents": 500})
        assert again.status_code == 200
        assert again.json()["id"] == created.json()["id"]  # idempotent per order
        await trio.sleep(0.1)
        auth = await client.get(f"/authorizations/{created.json()['id']}")
        assert auth.json()["status"] == "approved"


async def test_gateway_capture_fails_transiently_once_then_succeeds() -> None:
    gateway = Gateway(seed=7, delay=(0.0, 0.0), decline_rate=0.0, fault_rate=1.0)
    async with serve_gateway(gateway) as url, httpx.AsyncClient(base_url=url) as client:
        auth = (await client.post("/authorizations", json={"order": "o", "amount_cents": 1})).json()
        first = await client.post(f"/authorizations/{auth['id']}/capture")
        second = await client.post(f"/authorizations/{auth['id']}/capture")
        assert (first.status_code, second.status_code) == (503, 200)
        assert second.json()["status"] == "captured"


async def test_gateway_refuses_to_capture_a_declined_authorization() -> None:
    gateway = Gateway(seed=7, delay=(0.0, 0.0), decline_rate=1.0)
    async with serve_gateway(gateway) as url, httpx.AsyncClient(base_url=url) as client:
        auth = (await client.post("/authorizations", json={"order": "o", "amount_cents": 1})).json()
        assert (await client.get(f"/authorizations/{auth['id']}")).json()["status"] == "declined"
        assert (await client.post(f"/authorizations/{auth['id']}/capture")).status_code == 409
        assert (await client.get("/authorizations/nope")).status_code == 404
        bad = await client.post("/authorizations", content=b"{")
        assert bad.status_code == 400


def test_gateway_decisions_depend_only_on_seed_and_order() -> None:
    async def decisions(order_names: list[str]) -> dict[str, bool]:
        gateway = Gateway(seed=3)
        return {name: gateway.authorize(name, 1)[1].approved for name in order_names}

    names = [order_id(n) for n in range(1, 40)]
    forward = trio.run(decisions, names)
    backward = trio.run(decisions, names[::-1])
    assert forward == backward
    assert not all(forward.values())  # some are declined at the default rate


async def test_a_resumed_gateway_keeps_authorization_ids_and_finds_earlier_ones() -> None:
    # spec §9.2: ids are per order, so a new session neither restarts a numbering
    # (auth-00001 naming another order) nor loses an authorization to capture.
    first = Gateway(seed=7, delay=(0.0, 0.0), decline_rate=0.0, fault_rate=0.0)
    _, auth = first.authorize("order-0003", 100)
    assert auth.id == "auth-order-0003"
    resumed = Gateway(seed=7, delay=(5.0, 5.0), decline_rate=0.0, fault_rate=0.0)
    async with serve_gateway(resumed) as url, httpx.AsyncClient(base_url=url) as client:
        captured = await client.post(f"/authorizations/{auth.id}/capture")
        assert captured.status_code == 200 and captured.json()["order"] == "order-0003"
        again = await client.post(
            "/authorizations", json={"order": "order-0003", "amount_cents": 1}
        )
        assert again.json()["id"] == "auth-order-0003"


# --- orders and the journal (spec §9.3, §9.4) ------------------------------------


def test_orders_are_deterministic_for_a_seed() -> None:
    assert make_orders(20, seed=1) == make_orders(20, seed=1)
    assert make_orders(20, seed=1) != make_orders(20, seed=2)
    assert [o.id for o in make_orders(3, seed=1)] == ["order-0001", "order-0002", "order-0003"]


def test_summary_counts_outcomes_retries_and_percentiles(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    events = [
        {"t": 10.0, "kind": "step_started", "order": "a", "step": "reserve"},
        {"t": 10.5, "kind": "step_retry", "order": "a", "step": "reserve"},
        {"t": 12.0, "kind": "completed", "order": "a"},
        {"t": 10.0, "kind": "step_started", "order": "b", "step": "reserve"},
        {"t": 11.0, "kind": "authorization", "order": "b", "status": "declined"},
        {"t": 11.0, "kind": "compensated_run", "order": "b"},
        {"t": 10.0, "kind": "step_started", "order": "c", "step": "reserve"},
    ]
    # The recorder may wrap events; a crash may leave half a line.
    lines = [json.dumps({"run_id": "x", "seq": 1, "kind": "event", "event": e}) for e in events]
    lines.append('{"run_id": "x", "seq": 2, "kind": "ev')
    path.write_text("\n".join(lines) + "\n")
    summary = summarize(path, ["a", "b", "c"])
    assert (summary.completed, summary.compensated, summary.unfinished) == (1, 1, 1)
    assert (summary.retries, summary.declined) == (1, 1)
    assert (summary.p50, summary.p99) == (1.0, 2.0)


def test_summary_after_an_interruption_agrees_with_itself(tmp_path: Path) -> None:
    # spec §9.4: an order declined but still compensating when the session stopped
    # is unfinished; "of which declined" never exceeds "compensated".
    path = tmp_path / "j.jsonl"
    events = [
        {"t": 1.0, "kind": "step_retry", "order": "a", "step": "reserve"},
        {"t": 2.0, "kind": "authorization", "order": "a", "status": "declined"},
        {"t": 3.0, "kind": "authorization", "order": "b", "status": "declined"},
        {"t": 4.0, "kind": "compensated_run", "order": "b"},
        {"t": 5.0, "kind": "step_retry", "order": "c", "step": "email"},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = summarize(path, ["a", "b", "c"])
    assert (summary.compensated, summary.declined, summary.unfinished) == (1, 1, 2)
    # The live view of a resumed session counts the retries of earlier sessions too.
    from trexec._demo.session import _replay

    tally = Tally()
    for order in "abc":
        tally.add(order)
    _replay(path, tally)
    assert tally.retries == summary.retries == 2
    assert tally.lines == [] and tally.orders["b"].status == "compensated_run"


def test_gitignore_ignores_the_demos_files(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    names = ["trexec-demo.db", "trexec-demo.jsonl", "trexec-demo.state.json", "x.state.json.tmp"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *names], cwd=root, capture_output=True, text=True
    )
    assert result.stdout.split() == names


def test_state_file_round_trips_and_hides_nothing_it_needs(tmp_path: Path) -> None:
    journal = tmp_path / "demo.jsonl"
    state = DemoState(store="sqlite:///x.db", seed=3, orders=2, runs={"order-0001": 7})
    state.save(journal)
    assert DemoState.path(journal) == tmp_path / "demo.state.json"
    assert DemoState.load(journal) == state
    DemoState.path(journal).write_text("{not json")
    assert DemoState.load(journal) is None  # unreadable: a new demo


def test_store_urls_are_shown_without_their_password() -> None:
    assert _redact("postgresql://app:s3cret@db:5432/shop") == "postgresql://app@db:5432/shop"
    assert _redact("sqlite:///trexec-demo.db") == "sqlite:///trexec-demo.db"


def test_the_resume_hint_names_the_options_a_resume_must_repeat() -> None:
    def options(store: str, journal: str) -> Options:
        return Options(50, 8, None, store, Path(journal), reset=False, live=False)

    assert _same_options(options("sqlite:///trexec-demo.db", "trexec-demo.jsonl")) == ""
    pg = "postgresql://postgres@127.0.0.1/test"
    assert _same_options(options(pg, "trexec-demo.jsonl")) == " with the same --store"
    assert _same_options(options(pg, "j/x.jsonl")) == " with the same --store and --journal"


# --- the screen (spec §9.5) -----------------------------------------------------


def _tally() -> Tally:
    tally = Tally()
    for n in (1, 2, 3):
        tally.add(order_id(n))
    tally.apply({"t": 0, "kind": "step_started", "order": order_id(1), "step": "authorize"})
    tally.apply({"t": 0, "kind": "step_retry", "order": order_id(1), "step": "capture"})
    tally.apply({"t": 0, "kind": "completed", "order": order_id(2)})
    return tally


async def test_live_view_shows_a_progress_bar_and_orders_by_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with trio.move_on_after(1):
        await show_progress(console, _tally(), live=True)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "1/3" in out
    assert "authorizing" in out
    assert "retries so far" in out
    assert "order-0001  retry" in out  # retries are printed above the live view
    assert "order-0002  completed" not in out  # completions are only counted


async def test_plain_view_prints_one_line_per_retry_and_finished_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    console = Console(file=io.StringIO(), width=100)
    with trio.move_on_after(1):
        await show_progress(console, _tally(), live=False)
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("order-0001  retry")
    assert lines[1] == "order-0002  completed"
    assert len(lines) == 2


# --- the command (spec §9.1, §9.6) -----------------------------------------------


@pytest.mark.slow  # a whole demo in a subprocess, real time
def test_demo_runs_orders_to_completion_with_summary_and_journal(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--orders", "8", "--workers", "4", "--seed", "11")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trexec demo: summary" in out
    assert "run time p99" in out
    journal = tmp_path / "trexec-demo.jsonl"
    assert f"journal  {journal}" in out
    ends = terminal_events(journal)
    assert sorted(ends) == [order_id(n) for n in range(1, 9)]
    assert all(kinds in (["completed"], ["compensated_run"]) for kinds in ends.values())
    decisions = [e for e in read_events(journal) if e["kind"] == "authorization"]
    assert len(decisions) >= len(ends)  # every order was polled to a decision
    state = json.loads((tmp_path / "trexec-demo.state.json").read_text())
    assert state["finished"] is True
    assert "Traceback" not in result.stderr


def test_demo_rejects_a_bad_store_url_in_one_line(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--store", "mysql://x")
    assert result.returncode == 2
    assert "mysql://x" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_without_the_postgres_extra_names_what_to_install(tmp_path: Path) -> None:
    # psycopg made unimportable, as on a machine with only trexec[demo] installed
    code = "import sys; sys.modules['psycopg'] = None; from trexec._cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "demo", "--store", "postgresql://postgres@127.0.0.1/x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: a postgresql:// store needs the postgres extra: pip install 'trexec[postgres]'\n"
    )


@pytest.mark.slow  # the connection pool gives up after 10 s
def test_demo_reports_an_unreachable_store_in_one_line(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--store", "postgresql://postgres@127.0.0.1:1/none", timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ")
    assert "Connection refused" in result.stderr  # the reason, at once (spec §8.4.4)


def test_demo_on_a_store_that_cannot_open_keeps_the_interrupted_demos_journal(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "trexec-demo.jsonl"
    line = {"run_id": "order-0001", "seq": 0, "ts": 1.0, "kind": "started"}
    journal.write_text(json.dumps(line) + "\n")
    state = DemoState(store="sqlite:///trexec-demo.db", seed=3, orders=2, runs={"order-0001": 1})
    state.save(journal)
    result = run_demo(tmp_path, "--store", "sqlite:///no/such/dir/x.db", "--plain")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: StoreError: cannot open")
    assert journal.read_text() == json.dumps(line) + "\n"  # a typo in --store erased it
    assert DemoState.load(journal) == state


def test_demo_piped_into_a_closed_pipe_exits_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*DEMO, "--orders", "3", "--seed", "1", "--plain"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("trexec demo: 3 orders")
    proc.stdout.close()  # as `trexec demo | head -1` does
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert "Traceback" not in err and proc.returncode == 1


def interrupt_after_first_order(cwd: Path, *args: str) -> str:
    """Start a demo, SIGINT it once an order has ended, return its stdout."""
    proc = subprocess.Popen(
        [*DEMO, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "completed" in line or "compensated" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, "".join(seen) + out + err
    return "".join(seen) + out


@pytest.mark.slow
def test_demo_interrupted_with_sigint_resumes_and_finishes_every_order(tmp_path: Path) -> None:
    first = interrupt_after_first_order(
        tmp_path, "--orders", "30", "--workers", "2", "--seed", "5", "--plain"
    )
    assert "Interrupted: stopping cleanly" in first
    assert "run `trexec demo` again to resume" in first
    done_before = terminal_events(tmp_path / "trexec-demo.jsonl")
    assert 0 < len(done_before) < 30

    result = run_demo(tmp_path, "--plain")
    assert result.returncode == 0, result.stderr
    assert "Resuming" in result.stdout
    ends = terminal_events(tmp_path / "trexec-demo.jsonl")
    assert sorted(ends) == [order_id(n) for n in range(1, 31)]
    assert all(len(kinds) == 1 for kinds in ends.values())  # none ran to the end twice
    assert "orders unfinished: run" not in result.stdout
    # spec §9.6: the summaries agree with themselves: every compensated order was
    # declined (a resumed capture finds its authorization), none failed.
    for out in (first, result.stdout):
        rows = dict(re.findall(r"│ +([a-z ()]+?) +│ +([\d.]+)", out))
        assert rows["compensated"] == rows["of which payment declined"], out
        assert "failed" not in rows


@pytest.mark.slow
def test_demo_reset_cancels_the_interrupted_runs_and_starts_over(tmp_path: Path) -> None:
    from trexec import durable

    interrupt_after_first_order(tmp_path, "--orders", "12", "--workers", "2", "--plain")
    old = json.loads((tmp_path / "trexec-demo.state.json").read_text())

    result = run_demo(tmp_path, "--reset", "--orders", "3", "--plain")
    assert result.returncode == 0, result.stderr
    assert "Resuming" not in result.stdout
    assert "trexec demo: 3 orders" in result.stdout
    new = json.loads((tmp_path / "trexec-demo.state.json").read_text())
    assert new["demo"] != old["demo"]
    assert sorted(terminal_events(tmp_path / "trexec-demo.jsonl")) == [
        order_id(n) for n in (1, 2, 3)
    ]

    async def instances() -> list:
        async with durable.open_store("sqlite:///" + str(tmp_path / "trexec-demo.db")) as store:
            return await store.list(limit=10_000)

    # spec §9.6: --reset starts clean: only the new demo's runs, keyed by order.
    runs = [r for r in trio.run(instances) if r.machine == "workflow:trexec-demo-checkout"]
    assert sorted(r.key for r in runs) == [order_id(n) for n in (1, 2, 3)]
    assert {r.status for r in runs} <= {"done", "stopped"}


@pytest.mark.slow
@pytest.mark.postgres
def test_demo_runs_on_postgresql(tmp_path: Path) -> None:
    # A schema of its own: other tests share the database.
    store = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dtrexec_demo_test"
    result = run_demo(tmp_path, "--store", store, "--orders", "5", "--seed", "4", "--plain")
    assert result.returncode == 0, result.stderr
    assert f"store    {store}" in result.stdout
    ends = terminal_events(tmp_path / "trexec-demo.jsonl")
    assert sorted(ends) == [order_id(n) for n in range(1, 6)]
