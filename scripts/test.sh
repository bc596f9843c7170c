#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine:
# venv + install, Chromium for the browser tests, Redis + PostgreSQL, ruff, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow" tests/chatbot).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[test] installing Debian's chromium for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[test] could not install chromium; browser tests will say so" >&2
fi
scripts/services.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check .
# pytest keeps only the last -m: a caller's -m "not slow" brought the GPU tests back, so theirs is
# joined to "not gpu" instead
marker="not gpu"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -m) marker="($marker) and ($2)"; shift 2 ;;
    --markexpr=*) marker="($marker) and (${1#--markexpr=})"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
exec .venv/bin/pytest -m "$marker" "${args[@]}"
