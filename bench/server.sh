#!/usr/bin/env bash
# rear-server at fleet scale (issue: PostgreSQL, rate limiting, benchmark): seeds an SQLite
# database with 10,000 hosts x 100 reports directly (not over HTTP), then measures ingest over
# HTTP on 127.0.0.1 with concurrent clients and the time of the overview page and of searches,
# and prints a table. Targets: ingest >= 1,000 reports/s, each page < 100 ms (median).
# Exits 1 when a target is missed. Run through `make bench-server`; options go to
# bench/server.rs (--hosts N --reports N --clients N --ingest N --runs N --dir DIR).
# Needs about 3 GB of free space in $TMPDIR (or --dir) for the database.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${CARGO:-cargo}" bench --locked -p rear-server --bench server -- "$@"
