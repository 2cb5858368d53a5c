"""scripts/audit_deps.py reads pip-audit's verdict honestly: a run that audited nothing is a
skip (pip-audit itself then says "No known vulnerabilities found"), a finding fails.
pip-audit's output is canned here: the suite never touches the network; CI runs the real
audit (.ci/run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import audit_deps  # noqa: E402


def with_output(monkeypatch, dependencies: list[dict] | None, stderr: str = "") -> dict:
    stdout = json.dumps({"dependencies": dependencies, "fixes": []}) if dependencies is not None else ""
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: SimpleNamespace(stdout=stdout, stderr=stderr, returncode=0))
    return audit_deps.audit()


def test_nothing_audited_is_a_skip_not_a_pass(monkeypatch):
    report = with_output(monkeypatch, [{"name": "numpy", "skip_reason": "Dependency not found on PyPI"}])
    assert report["status"] == "skipped" and "none of the 1 packages" in report["reason"]
    report = with_output(monkeypatch, None, "ConnectionError: Max retries exceeded with url: /pypi/numpy/json")
    assert report["status"] == "skipped" and "Max retries" in report["reason"]


def test_a_known_vulnerability_fails_and_names_the_fix(monkeypatch):
    report = with_output(
        monkeypatch,
        [
            {"name": "numpy", "version": "2.0.0", "vulns": []},
            {"name": "h11", "version": "0.14.0", "vulns": [{"id": "GHSA-vqfr-h8mv-ghfj", "fix_versions": ["0.16.0"]}]},
            {"name": "voice-companion", "skip_reason": "Dependency not found on PyPI"},
        ],
    )
    assert report["status"] == "vulnerable" and report["audited"] == 2
    assert report["vulnerable"] == [
        {"name": "h11", "version": "0.14.0", "ids": ["GHSA-vqfr-h8mv-ghfj"], "fix": ["0.16.0"]}
    ]
    assert report["not_audited"] == ["voice-companion"]
