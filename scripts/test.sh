#!/usr/bin/env bash
# Quick start, command 2: set up (if needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
