#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks — never for real data (trust authentication).
#
#   scripts/pg-test-server.sh start DIR   initdb into DIR/data, start on a free 127.0.0.1 port (unix socket in
#                                         DIR/sock, fsync on), create database spinedesk_test; prints its URL
#   scripts/pg-test-server.sh stop DIR    stop the server and delete DIR
#
# Typical use:  dir=$(mktemp -d); export SPINEDESK_TEST_POSTGRES_URL=$(scripts/pg-test-server.sh start "$dir")
#               … ; scripts/pg-test-server.sh stop "$dir"
# The store tests do not need this: without SPINEDESK_TEST_POSTGRES_URL they start their own server the same way.
# As root, the server runs as the 'postgres' OS user (PostgreSQL refuses to run as root), so DIR must be
# reachable by that user (anything made by mktemp -d under /tmp is). Binaries: $PG_BINDIR, PATH, or the newest
# /usr/lib/postgresql/N/bin (Debian's postgresql package).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1; dir=$2

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
  if command -v pg_ctl >/dev/null 2>&1; then bindir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
  else bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1); fi
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "PostgreSQL server binaries not found: install the postgresql package (or set PG_BINDIR)" >&2
  exit 3
fi

as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
  start)
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    [ -e "$dir/data" ] && { echo "$dir/data already exists; stop that server first" >&2; exit 1; }
    mkdir -p "$dir/sock"
    [ ${#as_pg[@]} -gt 0 ] && chown -R postgres "$dir"
    "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U spinedesk --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    for attempt in 1 2 3 4 5; do
      port=$(free_port)
      if "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
          -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300" \
          start >/dev/null; then
        break
      fi
      [ "$attempt" -eq 5 ] && { tail -n 30 "$dir/server.log" >&2; exit 1; }
    done
    if ! "$bindir/createdb" -h 127.0.0.1 -p "$port" -U spinedesk spinedesk_test; then
      "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
      exit 1
    fi
    echo "postgresql://spinedesk@127.0.0.1:$port/spinedesk_test"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
