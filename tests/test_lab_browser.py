"""JupyterLab as `make lab` starts it: on loopback only, behind its token, with the kernel the notebooks
ask for; in a browser a notebook runs there and an explorer's controls and figure render, and a moved
control redraws the one figure in place."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_site_browser import CHROMIUM, FLAGS, _need

ROOT = Path(__file__).resolve().parent.parent
CELL = ("from mmlab.study import explore\n"
        "explore.sigkill_explorer(vma_mib=1024, populated_pct=25, kernel='2.6.31');")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except urllib.error.URLError:  # not listening yet
        return 0, ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free port, serving a folder with one explorer notebook; stopped afterwards."""
    if not (ROOT / ".venv" / "bin" / "jupyter").exists() or shutil.which("make") is None:
        _need(False, "make lab needs the project's .venv (make setup)")
    folder = tmp_path_factory.mktemp("lab")
    meta = json.loads((ROOT / "notebooks" / "06-simulated-before-after.ipynb").read_text())["metadata"]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {}, "outputs": [],
                     "source": CELL}], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}
    (folder / "explorer.ipynb").write_text(json.dumps(nb))
    port, token = _free_port(), secrets.token_hex(16)
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_PORT={port}", f"LAB_DIR={folder}",
                             f"ARGS=--IdentityProvider.token={token}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "MMLAB_RUNS_DIR": str(folder / "runs")})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while _get(f"{base}/api/status?token={token}")[0] != 200:
        assert proc.poll() is None, f"make lab stopped: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
        time.sleep(0.5)
    yield base, token, port
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def test_lab_answers_on_loopback_only_and_only_with_its_token(lab):
    base, token, port = lab
    assert _get(f"{base}/api/status")[0] == 403
    assert _get(f"{base}/api/status?token={token}")[0] == 200
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
    assert any(a.endswith(f":{port}") for a in listening) and all(
        a.startswith(("127.0.0.1:", "[::1]:")) for a in listening if a.endswith(f":{port}"))


def test_lab_provides_the_kernel_the_notebooks_ask_for(lab):
    base, token, _ = lab
    specs = json.loads(_get(f"{base}/api/kernelspecs?token={token}")[1])["kernelspecs"]
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        ks = json.loads(path.read_text())["metadata"]["kernelspec"]
        assert specs[ks["name"]]["spec"]["display_name"] == ks["display_name"], path.name


def test_an_explorer_runs_in_the_browser_and_redraws_its_one_figure(lab, tmp_path):
    _need(CHROMIUM is not None, "chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    base, token, _ = lab
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                                                   args=FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            page = ctx.new_page()
            page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)  # the kernel is up
            page.click(".jp-Cell .cm-content")
            page.keyboard.press("Shift+Enter")
            out = page.locator(".jp-Cell").first.locator(".jp-OutputArea")
            out.locator("img").first.wait_for(timeout=90_000)
            page.wait_for_selector(".widget-slider, .jupyter-widgets", timeout=60_000)
            assert out.locator("img").count() == 1
            labels = page.locator(".widget-label")
            texts = [labels.nth(i).inner_text() for i in range(labels.count())]
            assert "populated when killed (%)" in texts and "machine profile" in texts
            assert all(labels.nth(i).evaluate("e => e.scrollWidth <= e.clientWidth") for i in range(labels.count()))
            before = out.locator("img").first.get_attribute("src")
            page.locator(".widget-dropdown select").first.select_option(index=1)  # another kernel era
            page.wait_for_function("src => { const i = document.querySelectorAll('.jp-OutputArea img'); "
                                   "return i.length === 1 && i[0].src !== src; }", arg=before, timeout=60_000)
            assert "Traceback" not in out.inner_text()
        except Exception:
            artifacts = ROOT / "tests" / "artifacts"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "lab-explorer.png"))
            raise
        finally:
            ctx.close()
