"""The dashboard over HTTP (spec §12): pages, JSON API, filters, pagination,
escaping, errors and guarded writes, on both stores, against the real server."""

from __future__ import annotations

import pathlib
import sqlite3

import psycopg
import pytest
import trio
from click.testing import CliRunner
from dashboard_support import CHECKOUT, Note, Other, Waiter, dashboard, engine_on, insert_parked
from stores import PG_URL

from trexec import InvalidArgument, durable
from trexec._cli import cli
from trexec.dashboard import serve

WRITE = {"X-Trexec-Write": "1"}


async def test_list_is_newest_first_filtered_and_paginated(store_url):
    async with engine_on(store_url) as engine:
        ids = [await engine.insert(Waiter, Note(), key=f"w{n}") for n in range(5)]
        others = [await engine.insert(Other, Note()) for _ in range(2)]
        await engine.cancel(ids[0])
    async with dashboard(store_url) as client:
        page = (await client.get("/api/instances")).json()
        assert [i["id"] for i in page["instances"]] == [*reversed(ids + others)]
        assert page["next_before"] is None
        assert page["instances"][0]["state"] == {"note": ""}  # parsed JSON, not text

        got = (await client.get("/api/instances", params={"machine": "waiter"})).json()
        assert [i["id"] for i in got["instances"]] == ids[::-1]
        got = (await client.get("/api/instances", params={"status": "cancelled"})).json()
        assert [i["id"] for i in got["instances"]] == [ids[0]]
        got = (await client.get("/api/instances", params={"key": "w3"})).json()
        assert [i["id"] for i in got["instances"]] == [ids[3]]
        got = (await client.get("/api/instances?machine=waiter&status=scheduled&key=")).json()
        assert [i["id"] for i in got["instances"]] == ids[:0:-1]

        first = (await client.get("/api/instances", params={"limit": 3})).json()
        assert [i["id"] for i in first["instances"]] == [others[1], others[0], ids[4]]
        assert first["next_before"] == ids[4]
        params = {"limit": 3, "before": first["next_before"]}
        second = (await client.get("/api/instances", params=params)).json()
        assert [i["id"] for i in second["instances"]] == [ids[3], ids[2], ids[1]]
        params["before"] = second["next_before"]
        last = (await client.get("/api/instances", params=params)).json()
        assert [i["id"] for i in last["instances"]] == [ids[0]]
        assert last["next_before"] is None

        html = (await client.get("/", params={"limit": 3})).text
        assert f'href="/?limit=3&amp;before={ids[4]}"' in html  # the "older" link
        assert f'href="/instances/{ids[4]}"' in html
        assert f'href="/instances/{ids[1]}"' not in html
        fragment = (await client.get("/", params={"fragment": "1"})).text
        assert fragment.startswith("<table") and "<html" not in fragment


async def test_every_value_is_escaped(store_url):
    evil = "<script>alert('x')</script>"
    async with engine_on(store_url) as engine:
        id_ = await engine.insert(Waiter, Note(evil), key=f"<b>{evil}</b>")
        await engine.signal(id_, evil, {"html": evil})
    async with dashboard(store_url) as client:
        for path in ("/", f"/instances/{id_}", "/?key=" + evil, "/?status=" + evil):
            response = await client.get(path)
            assert "<script>alert" not in response.text, path
            assert "&lt;script&gt;alert" in response.text, path
        assert response.status_code == 400  # the bad status, named in the page, escaped
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        detail = (await client.get(f"/api/instances/{id_}")).json()
        assert detail["state"] == {"note": evil}  # JSON carries the value as it is
        assert detail["inbox"][0]["name"] == evil


async def test_instance_detail_shows_inbox_children_and_parent(store_url):
    async with engine_on(store_url) as engine:
        parent = await engine.insert(Waiter, Note("p"))
        await engine.signal(parent, "hello", {"n": 1}, dedup_key="d1")
    async with durable.open_store(store_url) as store:
        [child] = await store.insert(
            [durable._records.NewInstance("other", 1, "start", '{"note": "c"}', parent_id=parent)]
        )
    async with dashboard(store_url) as client:
        detail = (await client.get(f"/api/instances/{parent}")).json()
        assert detail["status"] == "scheduled" and detail["awaits"] == []
        assert [(s["name"], s["payload"], s["dedup_key"]) for s in detail["inbox"]] == [
            ("hello", {"n": 1}, "d1")
        ]
        assert [c["id"] for c in detail["children"]] == [child]
        assert detail["parent"] is None and detail["run"] is None
        child_detail = (await client.get(f"/api/instances/{child}")).json()
        assert child_detail["parent"]["id"] == parent
        html = (await client.get(f"/instances/{child}")).text
        assert f'<a href="/instances/{parent}">{parent}</a>' in html
        html = (await client.get(f"/instances/{parent}")).text
        assert "hello" in html and f'href="/instances/{child}"' in html


async def test_a_workflow_run_shows_its_step_table_and_graph(store_url):
    async with engine_on(store_url, workers=4, workflows=[CHECKOUT]) as engine:
        run_id = await engine.start_workflow(CHECKOUT, {"order": 7})
        assert (await engine.wait(run_id, timeout=20)).status == "done"
    async with dashboard(store_url) as client:
        detail = (await client.get(f"/api/instances/{run_id}")).json()
        run = detail["run"]
        assert run["workflow"] == "checkout" and run["phase"] == "done"
        assert sorted(s["step"] for s in run["steps"]) == ["charge", "email", "reserve", "ship"]
        assert {s["status"] for s in run["steps"]} == {"done"}
        assert run["after"]["ship"] == ["charge"]
        html = (await client.get(f"/instances/{run_id}")).text
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="step-graph"' in html
        assert html.count('class="node status-done"') == 4
        assert html.count('class="edge"') == 3  # reserve->charge, charge->ship, reserve->email
        assert '<tr data-step="charge">' in html


async def test_unknown_ids_answer_404_and_bad_filters_400(store_url):
    async with dashboard(store_url) as client:
        for path in ("/instances/12345", "/instances/99999999999999999999999", "/instances/x"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("text/html")
        assert "There is no instance 12345." in (await client.get("/instances/12345")).text
        response = await client.get("/api/instances/12345")
        assert response.status_code == 404
        assert response.json() == {"error": "there is no instance 12345"}
        assert (await client.get("/nowhere")).status_code == 404
        bad = {
            "status=sleeping": "status='sleeping': expected one of 'scheduled'",
            "limit=0": "limit='0': expected a whole number from 1 to 500",
            "limit=ten": "limit='ten': expected a whole number",
            "before=-3": "before='-3': expected a whole number",
            "stauts=done": "parameter='stauts': expected one of status, machine, key",
            "key=" + "k" * 501: "key='kkkk",
        }
        for query, reason in bad.items():
            response = await client.get(f"/api/instances?{query}")
            assert response.status_code == 400, query
            assert reason in response.json()["error"], query
            page = await client.get(f"/?{query}")
            assert page.status_code == 400 and "400 · Bad request" in page.text


async def test_writes_answer_403_without_allow_write(store_url):
    async with engine_on(store_url, workers=1) as engine:
        [id_] = await insert_parked(engine)
    async with dashboard(store_url) as client:
        for what, body in (("cancel", None), ("signal", {"name": "go", "payload": 1})):
            response = await client.post(f"/api/instances/{id_}/{what}", json=body, headers=WRITE)
            assert response.status_code == 403
            assert "--allow-write" in response.json()["error"]
        # No state-changing GET: the write endpoints only take POST.
        assert (await client.get(f"/api/instances/{id_}/cancel")).status_code == 405
        assert (await client.get(f"/api/instances/{id_}")).json()["status"] == "awaiting"


async def test_writes_with_allow_write_are_csrf_safe(store_url):
    async with engine_on(store_url, workers=1) as engine:
        first, second = await insert_parked(engine, 2)
    async with dashboard(store_url, allow_write=True) as client:
        cancel = f"/api/instances/{first}/cancel"
        refused = [
            {},  # no CSRF header: what a cross-site <form> sends
            {**WRITE, "Origin": "http://evil.example"},
            {**WRITE, "Sec-Fetch-Site": "cross-site"},
        ]
        for headers in refused:
            response = await client.post(cancel, headers=headers)
            assert response.status_code == 403, headers
        assert (await client.get(f"/api/instances/{first}")).json()["status"] == "awaiting"

        origin = str(client.base_url).rstrip("/")
        response = await client.post(cancel, headers={**WRITE, "Origin": origin})
        assert response.status_code == 200
        assert response.json() == {
            "id": first,
            "status": "cancelled",
            "previous_status": "awaiting",
        }
        assert (await client.post(cancel, headers=WRITE)).status_code == 409
        assert (await client.post("/api/instances/999/cancel", headers=WRITE)).status_code == 404

        signal = f"/api/instances/{second}/signal"
        form = await client.post(signal, data={"name": "go"}, headers=WRITE)
        assert form.status_code == 415  # a form post is never a signal
        for body in ('{"payload": 1}', '{"name": ""}', "[1]", "{nope", '{"name": "go", "x": 1}'):
            response = await client.post(
                signal, content=body, headers={**WRITE, "Content-Type": "application/json"}
            )
            assert response.status_code == 400, body
        response = await client.post(
            signal, json={"name": "go", "payload": {"a": 1}}, headers=WRITE
        )
        assert response.status_code == 200 and response.json()["duplicate"] is False
        assert (await client.get(f"/api/instances/{second}")).json()["status"] == "scheduled"
        gone = await client.post(
            f"/api/instances/{first}/signal", json={"name": "go"}, headers=WRITE
        )
        assert gone.status_code == 409 and "already cancelled" in gone.json()["error"]


async def test_a_failing_store_gives_503_and_the_server_keeps_serving(store_url):
    sqlite = store_url.startswith("sqlite:")

    def rename(old: str, new: str) -> None:
        if sqlite:
            with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
                conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
        else:
            schema = store_url.rsplit("%3D", 1)[1]
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'ALTER TABLE "{schema}".trexec_{old} RENAME TO trexec_{new}')

    async with dashboard(store_url) as client:
        assert (await client.get("/")).status_code == 200
        await trio.to_thread.run_sync(rename, "instances", "gone")
        page = await client.get("/")
        assert page.status_code == 503
        assert "The store is unavailable" in page.text
        assert (await client.get("/api/instances")).status_code == 503
        await trio.to_thread.run_sync(rename, "gone", "instances")
        assert (await client.get("/")).status_code == 200


async def test_a_foreign_host_header_is_refused(store_url):
    async with dashboard(store_url) as client:
        assert (await client.get("/", headers={"Host": "evil.example"})).status_code == 421
        assert (await client.get("/", headers={"Host": "localhost:1"})).status_code == 200


async def test_a_missing_sqlite_file_is_an_error_and_never_created(tmp_path: pathlib.Path):
    path = tmp_path / "missing.db"
    with pytest.raises(InvalidArgument, match="does not exist"):
        await serve(f"sqlite:///{path}", port=0)
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(durable.StoreError, match="trexec migrate"):
        await serve(f"sqlite:///{empty}", port=0)
    assert not path.exists()
    with sqlite3.connect(empty) as conn:  # no schema was created either
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_the_cli_reports_a_missing_database_in_one_line(tmp_path: pathlib.Path):
    path = tmp_path / "nope.db"
    result = CliRunner().invoke(cli, ["dashboard", "--store", f"sqlite:///{path}", "--port", "0"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output
    assert not path.exists()


def test_without_the_extra_the_command_prints_the_pip_line(tmp_path: pathlib.Path):
    """spec §12.1.4: a missing package is one line naming the extra, never a traceback."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['starlette'] = None\n"  # as if it were not installed
        "from trexec._cli import main; sys.argv = ['trexec', 'dashboard']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'trexec[dashboard]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # no trexec.db was created


async def test_a_port_in_use_is_one_error_not_a_group(store_url):
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidArgument, match=f"port={port}: expected a port free"):
            await serve(store_url, port=port)
