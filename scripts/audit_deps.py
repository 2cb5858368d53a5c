#!/usr/bin/env python3
"""Audit the installed dependencies for known vulnerabilities (pip-audit), for CI.

    python scripts/audit_deps.py [--json]

Runs `pip-audit` on this virtual environment (the exact versions installed). Exit
status 1 if any package has a known vulnerability. pip-audit needs the PyPI JSON API;
where it cannot reach it (offline, a local mirror without that API) it "audits" nothing
yet still prints "No known vulnerabilities found", so this script counts what was really
audited and, if that is nothing, SKIPS with a message saying so (exit 0) instead of
passing quietly. Packages that are not on PyPI (this project, model-part wheels) are
listed as not audited.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def audit() -> dict:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "-f", "json"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except FileNotFoundError as exc:
        return {"status": "skipped", "reason": f"cannot run pip-audit: {exc}"}
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": "pip-audit took over 10 minutes (vulnerability service unreachable?)"}
    if "No module named pip_audit" in done.stderr:
        return {"status": "skipped", "reason": "pip-audit is not installed: pip install -e '.[dev]'"}
    try:
        deps = json.loads(done.stdout)["dependencies"]
    except (ValueError, KeyError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "skipped", "reason": f"pip-audit could not fetch the vulnerability data: {last[:300]}"}
    audited = [d for d in deps if "skip_reason" not in d]
    report = {
        "audited": len(audited),
        "not_audited": sorted(d["name"] for d in deps if "skip_reason" in d),
        "vulnerable": [
            {
                "name": d["name"],
                "version": d["version"],
                "ids": [v["id"] for v in d["vulns"]],
                "fix": sorted({f for v in d["vulns"] for f in v.get("fix_versions", [])}),
            }
            for d in audited
            if d.get("vulns")
        ],
    }
    if not audited:
        report.update(
            status="skipped",
            reason=f"none of the {len(deps)} packages could be audited: the PyPI "
            "JSON API is not reachable from here (offline or a local mirror)",
        )
    else:
        report["status"] = "vulnerable" if report["vulnerable"] else "ok"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    report = audit()
    if args.json:
        print(json.dumps(report))
    elif report["status"] == "skipped":
        print(f"pip-audit SKIPPED: {report['reason']}")
    else:
        print(
            f"pip-audit: {report['audited']} packages audited, {len(report['vulnerable'])} with known "
            f"vulnerabilities; not on PyPI, not audited: {', '.join(report['not_audited']) or 'none'}"
        )
        for v in report["vulnerable"]:
            print(f"  {v['name']} {v['version']}: {', '.join(v['ids'])} (fixed in {', '.join(v['fix']) or '?'})")
    sys.exit(1 if report["status"] == "vulnerable" else 0)


if __name__ == "__main__":
    main()
