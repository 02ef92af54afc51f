"""Sessions: tests, lint, typecheck, docs, bench.  ``nox -s tests`` is the README's command."""

from __future__ import annotations

import pathlib

import nox

nox.options.sessions = ["tests", "slow", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = pathlib.Path(__file__).parent


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite but the ``slow`` tests (needs PostgreSQL at
    127.0.0.1:5432, see README): durable code in virtual time, every store,
    the dashboard in Chromium. ``nox -s slow`` runs the rest."""
    session.install("-e", ".[test]")
    # pytest exits 5 when no test ran; nox treats every non-zero exit as a failure.
    # One pytest worker per CPU (pytest-xdist): the tests share nothing (a SQLite
    # file or a PostgreSQL schema of their own, ports chosen by the system).
    # ``nox -s tests -- -n 0`` runs them in one process.
    session.run("pytest", "-m", "not slow", "-n", "auto", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The ``slow`` tests: real worker processes killed with SIGKILL, a
    PostgreSQL server restart mid-run, the demo's subprocesses, a fresh venv
    without extras. CI runs them after ``nox -s tests``."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The fuzz suite (tests/fuzz) with the long Hypothesis profile (issue 20)."""
    session.install("-e", ".[test]")
    env = {"TREXEC_FUZZ_PROFILE": "fuzz-long"}
    session.run("pytest", "tests/fuzz", "-p", "no:cacheprovider", *session.posargs, env=env)


@nox.session
def chaos(session: nox.Session) -> None:
    """Chaos at scale on PostgreSQL (bench/chaos.py; not a default session):
    10,000 instances, 4 workers killed at random, a server restart, cut
    connections. ``nox -s chaos -- --instances 2000`` for a smaller run,
    ``nox -s chaos -- --soak 3600`` for the soak variant."""
    session.install("-e", ".[postgres]")
    session.run("python", str(ROOT / "bench" / "chaos.py"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff==0.17.6")  # pinned: new releases reformat
    session.run("ruff", "check", "src", "tests", "bench", "docs", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "bench", "docs", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/trexec."""
    session.install("-e", ".[all]", "mypy", "pytest")  # pytest: trexec.testing's plugin
    session.run("mypy", "--strict", "src/trexec")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly: a broken link or a missing page fails."""
    # ruff formats the signatures mkdocstrings shows.
    site = ["mkdocs-material", "mkdocstrings[python]", "mkdocs-click", "ruff"]
    session.install("-e", ".[all]", *site)
    env = {"NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about its successor
    session.run("mkdocs", "build", "--strict", *session.posargs, env=env)
    # spec §9.13: the site browses from disk: every relative link names a file.
    session.run("python", str(ROOT / "tests" / "site_links.py"), str(ROOT / "site"))


@nox.session
def bench(session: nox.Session) -> None:
    """Run every bench/bench_*.py, then bench/report.py (docs/benchmarks.md, docs/img/).

    Each script's stdout (its Markdown tables) is kept in bench/results/<name>.md
    for the report and echoed here; its stderr goes to the terminal as is.
    ``nox -s bench -- bench_actions`` runs only the scripts whose name contains
    one of the given words. The report goes to bench/results/report/ (untracked);
    ``nox -s bench -- --write-report`` refreshes docs/benchmarks.md and docs/img/.
    """
    # Peer libraries and plotting are installed here only, never as trexec dependencies.
    peers = ["anyio", "dbos", "pgqueuer", "asyncpg", "procrastinate"]
    # bench_otel measures the instrumented engine with the SDK (a test dependency).
    session.install("-e", ".[all]", "matplotlib", "opentelemetry-sdk>=1.20", *peers)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    failed = []
    write = "--write-report" in session.posargs
    words = [word for word in session.posargs if word != "--write-report"]
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        if words and not any(word in script.stem for word in words):
            continue
        captured = results / f"{script.stem}.md"
        try:
            with captured.open("w", encoding="utf-8") as stdout:
                session.run("python", str(script), stdout=stdout, stderr=None)
        except nox.command.CommandFailed:
            failed.append(script.name)  # the report says so; the session fails below
        print(captured.read_text(encoding="utf-8"))
    options = [*(f"--failed={f}" for f in failed), *(["--write-report"] if write else [])]
    session.run("python", str(ROOT / "bench" / "report.py"), *options)
    if failed:
        session.error(f"benchmark scripts failed: {', '.join(failed)}")
