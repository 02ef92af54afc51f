"""The dashboard in a real browser (spec §12.7): headless Chromium from the
distribution's packages (``apt-get install chromium chromium-driver``), driven by
selenium. Skipped when Chromium is absent, unless TREXEC_TEST_BROWSER_REQUIRED=1
(``.ci/run`` sets it). Selenium blocks, so its calls run in a thread while the
server runs in the test's Trio run.

With TREXEC_DASHBOARD_SCREENSHOT=path, the run-page test saves its screenshot
there (docs/img/dashboard-run.png is made so).
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import dashboard_support as shared
import pytest
import trio
from dashboard_support import CHECKOUT, dashboard, engine_on

from trexec import durable

CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRED = os.environ.get("TREXEC_TEST_BROWSER_REQUIRED") == "1"
WAIT = 15.0  # seconds a condition may take in the browser: a ceiling, never a measurement


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not os.path.exists(CHROMEDRIVER):
        if REQUIRED:
            pytest.fail("TREXEC_TEST_BROWSER_REQUIRED=1 but chromium/chromedriver is missing")
        pytest.skip("needs chromium and chromium-driver: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900"):  # fmt: skip
        options.add_argument(flag)
    options.binary_location = chromium
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def run(fn: Callable[..., Any], *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


async def until(browser: Any, condition: Callable[[Any], Any]) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return await run(WebDriverWait(browser, WAIT, poll_frequency=0.05).until, condition)


def by_css(selector: str) -> Callable[[Any], Any]:
    from selenium.webdriver.common.by import By

    return lambda driver: driver.find_elements(By.CSS_SELECTOR, selector) or False


@pytest.fixture
async def sqlite_url(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # a short relative URL, as users type it (the screenshot shows it)
    url = "sqlite:///trexec.db"
    async with durable.open_store(url) as store:
        await store.migrate()
    return url


def live(driver: Any) -> bool:
    script = "return document.getElementById('live-status').textContent"
    return str(driver.execute_script(script)).startswith("live")


async def test_instances_appear_live_without_reload(browser, sqlite_url):
    async with dashboard(sqlite_url) as client, engine_on(sqlite_url) as engine:
        await run(browser.get, f"{client.base_url}?machine=waiter")
        await until(browser, by_css("td.empty"))
        # A reload would lose this mark: finding it afterwards proves there was none.
        await run(browser.execute_script, "window.trexecMark = 'same page';")
        ids = [await engine.insert(shared.Waiter, shared.Note(f"n{n}")) for n in range(3)]
        await until(browser, by_css(f'tr[data-id="{ids[-1]}"]'))
        rows = await run(browser.execute_script, "return [...document.querySelectorAll("
                         "'table.instances tbody tr')].map(r => Number(r.dataset.id))")  # fmt: skip
        assert rows == ids[::-1]  # newest first
        assert await run(browser.execute_script, "return window.trexecMark") == "same page"
        assert await run(live, browser)


async def test_open_a_run_and_cancel_it(browser, sqlite_url):
    from selenium.webdriver.common.by import By

    shared.gate = trio.Event()  # the run's "charge" step waits on it: the run stays live
    try:
        async with (
            dashboard(sqlite_url, allow_write=True) as client,
            engine_on(sqlite_url, workers=4, workflows=[CHECKOUT], shutdown_grace=0.1) as engine,
        ):
            run_id = await engine.start_workflow(CHECKOUT, {"order": 42})
            await run(browser.get, str(client.base_url))
            link = (await until(browser, by_css(f'a[href="/instances/{run_id}"]')))[0]
            await run(link.click)
            await until(browser, by_css('svg.step-graph g.node[data-step="charge"].status-running'))
            await until(browser, by_css('svg.step-graph g.node[data-step="reserve"].status-done'))
            steps = await run(browser.find_elements, By.CSS_SELECTOR, "table.steps tbody tr")
            assert len(steps) == 4
            await until(browser, live)  # the run page updates itself too
            if target := os.environ.get("TREXEC_DASHBOARD_SCREENSHOT"):
                await run(browser.save_screenshot, target)
            button = await run(
                browser.find_element, By.CSS_SELECTOR, 'button[data-action="cancel"]'
            )
            await run(button.click)
            alert = await run(lambda: browser.switch_to.alert)
            await run(alert.accept)

            def cancelled(driver: Any) -> bool:
                # One script, not find + read: the live region may be replaced in between.
                script = "return document.getElementById('instance-status').textContent"
                return driver.execute_script(script) == "cancelled"

            await until(browser, cancelled)
            assert (await engine.get(run_id)).status == "cancelled"
            result = await run(browser.find_element, By.CSS_SELECTOR, ".action-result")
            assert result.text == "cancel: done"
            shared.gate.set()
    finally:
        shared.gate = None
