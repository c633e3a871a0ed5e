#!/usr/bin/env bash
# Why this exists: issue 7 asks for proof that Retrain holds up under
# sustained load, not just in a burst: mixed predictions and feedback from
# eight users (400 predictions and 100 feedback rows a second), a retrain
# run every 30 s, a promotion or rollback every 20 s, with zero failed
# requests, every acknowledged feedback row stored, resident memory flat
# (sampled every 10 s, printed) and database connections within the pools.
# The test suite runs the same test for 60 s (debug, CI's short mode); this
# runs it for 10 minutes in release, as BENCHMARKS.md records.
#
#   bench/soak.sh          # 600 s; needs PostgreSQL on 127.0.0.1:5432 (trust)
#   bench/soak.sh 120      # another duration, in seconds (at least 30)
#
# The test (api/tests/soak) starts `retrain serve --role api` and
# `--role worker` on a scratch database it creates next to DATABASE_URL's
# database and drops at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export RETRAIN_SOAK_SECS=${1:-600}
echo "soak: ${RETRAIN_SOAK_SECS} s, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
cargo test --release -p retrain-api --test soak -- --nocapture
echo "soak: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
