"""The ``trexec`` command line as a new user meets it (issue 16; spec §5.13, §7):
help everywhere, read-only commands that create nothing, workflow runs in
``ls``/``show``, one-line errors. Each test runs in a fresh temporary directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from trexec import durable
from trexec._cli import cli
from trexec.workflows import Step, Workflow

COMMANDS = sorted(cli.commands)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TREXEC_STORE", raising=False)
    return tmp_path


def run_cli(*args: str, columns: int = 200) -> tuple[int, str]:
    env = {"COLUMNS": str(columns)}
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="trexec")
    return result.exit_code, result.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_dash_h_is_help_everywhere_and_says_nothing_of_the_spec(cwd, command):
    code, out = run_cli(*([command] if command else []), "-h", columns=80)
    assert code == 0 and out.startswith("Usage: trexec")
    assert "spec" not in out and "§" not in out
    # spec §7.1: no help text cut short in the command list
    assert not re.search(r"\w\.\.\.$", out, re.MULTILINE)


def test_worker_help_explains_module_with_an_example(cwd):
    code, out = run_cli("worker", "-h")
    assert code == 0
    assert "MODULE is a Python module path" in out
    assert "trexec worker --import myapp.jobs" in out


@pytest.mark.parametrize(
    "args",
    [
        ["ls"],
        ["show", "1"],
        ["show", "order-0001"],
        ["signal", "1", "go"],
        ["cancel", "1"],
        ["prune", "--older-than", "0"],
    ],
)
def test_commands_that_need_a_store_create_none(cwd, args):
    # spec §5.13.4: no trexec.db appears; one line names the path.
    code, out = run_cli(*args)
    assert code == 1
    assert out == (
        f"Error: StoreError: no store at sqlite:///trexec.db ({cwd / 'trexec.db'} does not "
        "exist): check --store, or create one with `trexec migrate`\n"
    )
    assert list(cwd.iterdir()) == []


def test_migrate_creates_the_store(cwd):
    assert run_cli("migrate")[0] == 0
    assert (cwd / "trexec.db").exists()


async def step(ctx):
    if ctx.step == "charge":
        raise RuntimeError("card expired")
    return {"step": ctx.step}


async def undo(ctx):
    return None


CHECKOUT = Workflow(
    "checkout",
    [
        Step("reserve", step, compensate=undo),
        Step("charge", step, after=["reserve"]),
    ],
)


async def seed_runs(url: str, count: int) -> None:
    async with (
        durable.open_store(url) as store,
        durable.open_engine(store, workflows=[CHECKOUT], poll_interval=0.02) as engine,
    ):
        for n in range(1, count + 1):
            await engine.wait(
                await engine.start_workflow(CHECKOUT, n, key=f"order-{n:04d}"), timeout=10
            )


def test_show_renders_a_workflow_run_as_its_step_table(cwd):
    trio.run(seed_runs, "sqlite:///trexec.db", 1)
    code, out = run_cli("show", "order-0001")
    assert code == 0, out
    assert "run 1 · order-0001 · checkout · stopped (failed)" in out
    header = next(line for line in out.splitlines() if "attempts" in line)
    assert re.findall(r"\w+", header) == [
        "step", "status", "attempts", "duration", "error", "compensation"
    ]  # fmt: skip
    reserve = next(line for line in out.splitlines() if "│ reserve" in line)
    assert re.search(r"reserve\s+│ done\s+│ 1\s+│ \d+\.\d\d s\s+│\s+│ done", reserve)
    assert "RuntimeError: card expired" in out and "history" in out
    assert '"run_key"' not in out  # no raw JSON ...
    code, raw = run_cli("show", "--json", "order-0001")
    assert code == 0 and '"run_key": "order-0001"' in raw  # ... unless asked for


def test_ls_takes_a_workflow_name_shows_whole_keys_and_says_what_is_past_the_limit(cwd):
    trio.run(seed_runs, "sqlite:///trexec.db", 3)
    code, out = run_cli("ls", "--machine", "checkout", "--limit", "2")
    assert code == 0
    assert "order-0001" in out and "order-0002" in out and "order-0003" not in out
    assert "workflow:checkout@1" in out
    last = int(re.findall(r"│ (\d+)\s+│ workflow:checkout@1", out)[-1])
    assert out.rstrip().endswith(
        f"1 more instance: --after {last} shows the next page (--limit sets its size)"
    )
    code, out = run_cli("ls", "--machine", "checkout", "--after", str(last))
    assert code == 0 and "order-0003" in out and "more instance" not in out
    code, out = run_cli("ls", "--limit", "2")  # step instances too: their keys whole
    assert "order-0001/reserve" in out


def test_every_command_reports_errors_in_one_style(cwd):
    assert run_cli("migrate")[0] == 0
    lines = [
        run_cli("show", "404")[1],
        run_cli("cancel", "nope")[1],
        run_cli("ls", "--store", "mysql://x")[1],
        run_cli("worker", "--import", "no_such_module_here")[1],
        run_cli("demo", "--store", "sqlite:///no/such/dir/x.db", "--plain")[1],
    ]
    for line in lines:
        assert re.fullmatch(r"Error: [A-Za-z]+: .+\n", line), line


def test_open_store_without_the_postgres_extra_is_one_line(cwd):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import trio, trexec\n"
        "from trexec import durable\n"
        "async def main():\n"
        "    async with durable.open_store('postgresql://x@127.0.0.1/db'):\n"
        "        pass\n"
        "try:\n"
        "    trio.run(main)\n"
        "except trexec.MissingExtra as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == (
        "MissingExtra a postgresql:// store needs the postgres extra: "
        "pip install 'trexec[postgres]'\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    cli_code = "import sys; sys.modules['psycopg'] = None; from trexec._cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", cli_code, "ls", "--store", "postgresql://x@127.0.0.1/db"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: a postgresql:// store needs the postgres extra: pip install 'trexec[postgres]'\n"
    )


def test_missing_extra_is_a_trexec_error_and_an_import_error():
    import trexec

    assert issubclass(trexec.MissingExtra, trexec.TrexecError)
    assert issubclass(trexec.MissingExtra, ImportError)


def test_the_cli_page_shows_the_errors_the_commands_print(cwd):
    # docs/cli.md shows real output (issue 16): regenerate the page when this fails.
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = run_cli("ls")[1].replace(str(cwd), "/home/me/project")
    assert run_cli("migrate")[0] == 0
    for out in [missing, run_cli("show", "42")[1], run_cli("ls", "--store", "nosuch://x")[1]]:
        assert out in page
    trio.run(seed_runs, "sqlite:///trexec.db", 3)
    paging = run_cli("ls", "--machine", "checkout", "--limit", "1")[1].splitlines()[-1]
    assert re.sub(r"\d+", "N", paging) in re.sub(r"\d+", "N", page)
