#!/usr/bin/env bash
# Create .venv and install FinPulse from this repository's own files (idempotent).
# torch is pinned to 2.13.0, whose CPU build pip takes from local disk on FinPulse's
# dev machines (elsewhere set TORCH_INDEX_URL to PyTorch's CPU wheel index for a small install, as the
# Dockerfile's build argument); GPU users: see README "GPU install".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.finpulse-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import shared, training" 2>/dev/null; then
  echo "[bootstrap] installing finpulse and its dependencies (first run takes a few minutes)" >&2
  .venv/bin/pip install -q --disable-pip-version-check -U pip setuptools wheel
  .venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  .venv/bin/pip install -q --disable-pip-version-check -e ".[${FINPULSE_EXTRAS:-dev}]"
  echo "$want" > "$stamp"
fi
