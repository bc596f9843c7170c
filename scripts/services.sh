#!/usr/bin/env bash
# Start the local Redis and PostgreSQL the tests use, when they are not already running.
set -uo pipefail
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    echo "[services] starting redis-server on 127.0.0.1:6379" >&2
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
  else
    echo "[services] redis-server not installed: apt-get install redis-server" >&2
  fi
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -n | tail -1)
    echo "[services] starting PostgreSQL $ver" >&2
    pg_ctlcluster "$ver" main start || true
  else
    echo "[services] PostgreSQL not installed; the postgres-marked tests will say so" >&2
  fi
fi
for _ in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 0.5
done
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break
  sleep 0.5
done
