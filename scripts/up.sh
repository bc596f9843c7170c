#!/usr/bin/env bash
# One command to run the whole suite on a fresh machine: venv + install, then `finpulse up`
# (its own Redis if none answers, SQLite under FINPULSE_HOME, models prepared on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
FINPULSE_EXTRAS=${FINPULSE_EXTRAS:-dev} scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/finpulse up "$@"
