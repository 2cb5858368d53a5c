#!/usr/bin/env bash
# Quick start, command 1: set up (if needed) and start the companion.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/voice-companion "$@"
