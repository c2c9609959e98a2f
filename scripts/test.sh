#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint, type check and tests (unit + end-to-end
# against real emulator processes over real HTTPS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q "$@"
