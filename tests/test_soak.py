"""The soak's short version: 2 callers talking in turn for 20 s against a real server
process (tiny LLM). The 30-minute run with 8 callers is `scripts/soak_server.py`
(docs/reliability.md); this one checks the script and the leak checks it makes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # 20 s of calls to a server with the real models

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "soak_server.py"


def test_two_callers_for_twenty_seconds_leave_nothing_behind():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "2", "--duration", "20", "--window", "10", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"], (report, result.stderr[-2000:])
    assert report["turns"] >= 3 and report["failed"] == 0, report  # 2 s pauses; slower when the CPU is shared
    assert all(w["v2v_ms"] for w in report["windows"][:2]), report["windows"]
    server = report["server"]
    assert server["end_idle"]["calls"] == 0 and server["peak"]["calls"] >= 1 and not server["leaks"], server
