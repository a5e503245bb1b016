"""Headless Chromium for the tests: open a page, or one result inside Snakemake's report, and
read back the page's errors and what it drew.

Chromium (Debian's ``chromium``) runs with ``--dump-dom`` and a virtual-time budget; the page
records its own errors (:data:`ERROR_PROBE`) into an attribute of ``<html>``, which the dumped
DOM carries back.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Recorded in the page itself, so that errors are told from Chromium's own performance
# notes (which its log prints as console lines too): console.error calls, uncaught
# exceptions and rejected promises, written into an attribute of <html> for --dump-dom.
ERROR_PROBE = """<script>
window.__errors = [];
const __error = console.error;
console.error = function (...args) { __errors.push(args.map(String).join(" "));
  __error.apply(console, args); };
addEventListener("error", (e) => __errors.push("uncaught: " + e.message));
addEventListener("unhandledrejection", (e) => __errors.push("rejection: " + e.reason));
setInterval(() => document.documentElement.setAttribute(
  "data-errors", JSON.stringify(__errors)), 50);
</script>"""


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str], list[str]]:
    """Load ``page`` (with :data:`ERROR_PROBE` first in <head>) in headless Chromium.

    Returns the DOM after 15 s of virtual time, the page's errors, and Chromium's console
    log lines (warnings included)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    probed = profile.parent / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("<head>", "<head>" + ERROR_PROBE, 1))
    run = subprocess.run(
        [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-unsafe-swiftshader",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<html[^>]*data-errors="([^"]*)"', run.stdout)
    assert found, "the error probe did not run"
    errors = json.loads(html_lib.unescape(found.group(1)))
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return run.stdout, errors, console


# Inside an embedded page (an iframe of the report, whose data: origin the report cannot
# read): posts its errors and what plotly drew to the report every 100 ms.
EMBEDDED_REPORTER = """<script>
setInterval(() => parent.postMessage({bt3dEmbedded: {
  errors: window.__errors,
  plots: document.querySelectorAll(".js-plotly-plot").length,
  scenes: document.querySelectorAll(".gl-container").length,
  canvases: document.querySelectorAll("canvas").length,
  tables: document.querySelectorAll("table").length,
  text: document.body ? document.body.innerText.slice(0, 4000) : ""}}, "*"), 100);
</script>"""

# In the report: keeps the embedded page's last message, and shows ``key`` as the report's
# own result button does (app.setView with the result's data URI).
REPORT_OPENER = """<script>
addEventListener("message", (e) => { if (e.data && e.data.bt3dEmbedded)
  document.documentElement.setAttribute("data-embedded", JSON.stringify(e.data.bt3dEmbedded)); });
setTimeout(() => app.setView({content: "html", contentPath: results[KEY].data_uri,
  resultPath: KEY}), 300);
</script>"""

RESULTS_SCRIPT = re.compile(r'(<script id="results">\s*var results = )(.*?)(;\s*</script>)', re.S)


def report_results(report: Path) -> dict[str, dict]:
    """The ``results`` table of a Snakemake report: result path -> its entry (``data_uri``,
    ``mime_type``, ``caption``, ...)."""
    found = RESULTS_SCRIPT.search(report.read_text())
    assert found, f"{report}: no results script; not a Snakemake 9 report?"
    return json.loads(found.group(2))


def decode_data_uri(uri: str) -> str:
    """The text of a ``data:<mime>;...;base64,<data>`` URI as the report embeds results."""
    head, _, data = uri.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), head[:80]
    return base64.b64decode(data).decode("utf-8")


def open_report_result(report: Path, key: str, profile: Path) -> tuple[list, dict, list[str]]:
    """Open ``report`` in headless Chromium and show its HTML result ``key`` in the report's
    own iframe. Returns the report's errors, the embedded page's report (its ``errors``, the
    ``plots``, ``scenes`` and ``canvases`` plotly drew, ``tables``, ``text``) and Chromium's
    console lines."""
    content = report.read_text()
    uri = report_results(report)[key]["data_uri"]
    head, _, _ = uri.partition(",")
    page = decode_data_uri(uri).replace("<head>", "<head>" + ERROR_PROBE + EMBEDDED_REPORTER, 1)
    probed_uri = head + "," + base64.b64encode(page.encode("utf-8")).decode("ascii")
    content = content.replace(uri, probed_uri, 1)
    opener = REPORT_OPENER.replace("KEY", json.dumps(key))
    probed = profile.parent / f"report-{report.name}"
    end = content.rindex("</body>")
    probed.write_text(content[:end] + opener + content[end:])
    dom, errors, console = open_in_chromium(probed, profile)
    found = re.search(r'<html[^>]*data-embedded="([^"]*)"', dom)
    assert found, "the embedded page never reported back:\n" + "\n".join(console[-20:])
    return errors, json.loads(html_lib.unescape(found.group(1))), console
