"""The documentation page at /api/docs, rendered by a real browser: headless Chromium (Debian's
``chromium``, which .ci/run installs) loads it from a live pserve and the rendered page lists
every endpoint. Swagger UI's assets come from the installed swagger_ui_bundle package; the
page's Content-Security-Policy lets the browser load nothing from anywhere else.

In CI (``CI`` set) a missing Chromium fails the test; elsewhere it skips, saying how to install
it."""

import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from .live_server import live_server

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Let the page's scripts run, fetch the document and render before the DOM is dumped.
    "--virtual-time-budget=20000",
]


@pytest.fixture
def chromium():
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("docs-server")) as base:
        yield base


def rendered_dom(chromium, url, tmp_path):
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def documented_operations(server):
    with urllib.request.urlopen(f"{server}/api/openapi.json", timeout=5) as response:
        document = json.load(response)
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_the_docs_page_lists_every_endpoint_in_a_browser(chromium, server, tmp_path):
    dom = rendered_dom(chromium, f"{server}/api/docs", tmp_path)

    # Swagger UI rendered the document: one block per operation, with its method and path.
    shown = set(
        re.findall(
            r'<span class="opblock-summary-method">(\w+)</span>.*?data-path="([^"]+)"',
            dom,
        )
    )
    assert ("POST", "/api/events/{id}/purchase") in shown, dom[-2000:]
    assert shown == documented_operations(server)
    assert "Ticketing API" in dom
    assert "Buy tickets" in dom


def test_the_docs_page_loads_nothing_from_elsewhere(server):
    with urllib.request.urlopen(f"{server}/api/docs", timeout=5) as response:
        html = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/api/") for source in sources), sources
    for source in sources:
        with urllib.request.urlopen(f"{server}{source}", timeout=5) as asset:
            assert asset.status == 200, source
