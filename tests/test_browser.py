"""Browser smoke test: JupyterLab serves 06_dashboard, headless Chromium runs it and uses it.

JupyterLab (not Voila) because the notebook's last cell closes the fleet: the test runs every
cell above it, as the notebook tells a reader to, then creates a device through the creator
panel and waits until the live chart draws that device's readings. The screenshot lands in
``test-artifacts/dashboard.png``.

Needs Debian's ``chromium`` and PyPI's ``playwright`` (never ``playwright install``: the
browser comes from Debian). Missing either is a skip locally and a failure with ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import LOOPBACK, free_port, service_missing

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_dashboard.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAB_START_S = 90.0
RUN_CELLS_S = 120.0
CHART_S = 60.0
DEVICE = "MOCK_BROWSER1"
NOTEBOOK_READY = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return !!(w && w.content && w.content.widgets && w.content.widgets.length > 2
              && w.context && w.context.isReady
              && w.sessionContext && w.sessionContext.session
              && w.sessionContext.session.kernel
              && w.sessionContext.session.kernel.status === "idle");
}"""
RUN_ALL_BUT_LAST = """() => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    notebook.activeCellIndex = notebook.widgets.length - 1;
    return window.jupyterapp.commands.execute("notebook:run-all-above");
}"""
# A few readings per device, so that the screenshot shows lines, not dots.
ENOUGH_READINGS = """() => {
    const el = document.querySelector(".mocksim-chart-summary");
    const m = el && el.textContent.match(/(\\d+) readings/);
    return !!m && Number(m[1]) >= 8;
}"""
# JupyterLab's "get the news?" toast would cover part of the screenshot.
NO_NEWS = '{"fetchNews": "false", "checkForUpdates": false}'

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    if not CHROMIUM.exists():
        service_missing(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        service_missing("playwright is missing (pip install playwright; no playwright install)")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer on {url} in {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on a free loopback port, no token, serving a copy of the dashboard notebook.

    A copy, so that JupyterLab's autosave can never write outputs into the committed notebook
    and the notebook's database file lands in the test's directory.
    """
    _require_browser()
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "MOCKSIM_FAST": "1",
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        }
    )
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(NO_NEWS)
    log = tmp_path / "lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ip={LOOPBACK}",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.root_dir={work}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--expose-app-in-browser",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",
        "--allow-root",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        _wait_http(f"{url}/api/status", proc, log, LAB_START_S)
        yield url
    finally:
        # The server and its kernels form one process group of our own.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_dashboard_in_chromium_creates_a_device_and_charts_its_readings(lab: str) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional dependency

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(f"{lab}/lab/tree/{NOTEBOOK.name}")
            page.wait_for_function(
                "() => window.jupyterapp !== undefined", timeout=LAB_START_S * 1000
            )
            # Wait for the notebook and its kernel, then run everything above the last cell
            # (which closes the fleet), as the notebook tells a reader to.
            page.wait_for_function(NOTEBOOK_READY, timeout=LAB_START_S * 1000)
            page.evaluate(RUN_ALL_BUT_LAST)
            dashboard = page.locator(".mocksim-dashboard")
            dashboard.wait_for(timeout=RUN_CELLS_S * 1000)
            dashboard.get_by_text("created MOCK_DASH1").wait_for(timeout=RUN_CELLS_S * 1000)

            page.fill(".mocksim-device-id input", DEVICE)
            page.click(".mocksim-add-sensor")
            page.click(".mocksim-create")
            dashboard.get_by_text(f"created {DEVICE}").wait_for(timeout=CHART_S * 1000)

            chart = page.locator(".mocksim-chart")
            legend = chart.locator("text.legendtext", has_text=f"{DEVICE} · gpio 4")
            legend.wait_for(timeout=CHART_S * 1000)
            line_drawn = (
                "() => [...document.querySelectorAll('.mocksim-chart path.line')]"
                ".some(p => (p.getAttribute('d') || '').length > 10)"
            )
            page.wait_for_function(line_drawn, timeout=CHART_S * 1000)
            page.wait_for_function(ENOUGH_READINGS, timeout=CHART_S * 1000)
            summary = page.locator(".mocksim-chart-summary").inner_text()
            dashboard.scroll_into_view_if_needed()
            dashboard.screenshot(path=str(shot))
        finally:
            browser.close()
    assert "readings" in summary
    assert shot.stat().st_size > 10_000
