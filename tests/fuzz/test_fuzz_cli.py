"""Fuzz the command line (issue 20): any argument list ends with exit code 0, 1
(an error, one line) or 2 (a usage error): never a traceback."""

from __future__ import annotations

import pathlib

import pytest
from click.testing import CliRunner
from fuzz_strategies import odd_text
from hypothesis import given, strategies as st

from trexec._cli import cli

COMMANDS = ["ls", "show", "signal", "cancel", "migrate", "prune"]
OPTIONS = ["--limit", "--payload", "--dedup-key", "--older-than", "--status", "--json", "--help"]
words = st.one_of(
    st.sampled_from(OPTIONS),
    odd_text.filter(lambda text: "\x00" not in text),  # argv cannot hold NUL
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["nan", "inf", "-1", "0", "1", "{}", "[1,", "null", '"x"', "1e400"]),
)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: pathlib.Path = tmp_path_factory.mktemp("cli")
    return f"sqlite:///{path}/fuzz.db"


@given(command=st.sampled_from(COMMANDS), args=st.lists(words, max_size=5))
def test_any_arguments_end_in_a_clean_exit(url, command, args):
    result = CliRunner().invoke(cli, [command, *args], env={"TREXEC_STORE": url, "COLUMNS": "200"})
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
