#!/usr/bin/env bash
# Why this exists: DESIGN.md sets throughput and latency targets for
# `POST /predict` and `POST /feedback` (64 connections: >= 30,000 req/s with
# p99 < 5 ms, and >= 10,000 req/s acknowledged after commit). This script
# measures them the way an operator would see them: the release binary
# (`retrain serve --role api`) on a scratch database, Debian's wrk on
# loopback, 16 and 64 connections. It fails if any answer is not 2xx, and it
# checks that every acknowledged feedback row is in the database.
#
#   bench/http.sh                 # needs PostgreSQL on 127.0.0.1:5432 (trust)
#
# Knobs (environment): DATABASE_URL (a server URL; a scratch database is
# created next to its database and dropped at the end), BENCH_DURATION
# (seconds per run, 15), BENCH_THREADS (wrk threads, 2), BENCH_CONNECTIONS
# ("16 64"), BENCH_ENDPOINTS ("predict feedback"), BENCH_KEEP_LOG=1,
# BENCH_LEARNER (a learner as `PATCH /models/{name}` takes it, e.g.
# '{"name": "random_forest", "settings": {"trees": 300}}': before measuring,
# a worker process trains the served model with it and the version is
# promoted by hand, whatever the gate says, so that model is what is served),
# BENCH_PREDICT_KEY=1 (predictions carry a client key too; feedback always
# does, as it needs one), BENCH_LIMITS=1 (per-key rate limits on, set too
# high to refuse anything: their cost, not their effect; off by default,
# so one key may send the 10,000 rows a second the target asks for),
# BENCH_BINARY (a `retrain` binary to measure instead of building this
# checkout's, e.g. a copy of an earlier build for a paired comparison).
#
# The machine has 2 cores: wrk and the server (and PostgreSQL, for the
# prediction log and the feedback commits) share them, so the figures are a
# floor for a server with cores of its own.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
base_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
duration=${BENCH_DURATION:-15}
threads=${BENCH_THREADS:-2}
connections=${BENCH_CONNECTIONS:-16 64}
endpoints=${BENCH_ENDPOINTS:-predict feedback}
token=bench-admin-token-0123456789abcdef
scratch=retrain_bench_http_$$

die() { echo "bench/http.sh: $*" >&2; exit 1; }

for tool in psql curl; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install postgresql-client curl)"
done
if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package) ..."
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else sudo apt-get install -y wrk >/dev/null; fi
    command -v wrk >/dev/null || die "cannot install wrk"
fi
psql "$base_url" -qAtc 'SELECT 1' >/dev/null 2>&1 \
    || die "no PostgreSQL answers at $base_url; start one (pg_ctlcluster 15 main start) or set DATABASE_URL"

# The scratch database sits next to the base URL's database.
url_path=${base_url%%\?*}
url_query=${base_url#"$url_path"}
scratch_url="${url_path%/*}/$scratch$url_query"

log=$(mktemp -t retrain-bench-http.XXXXXX.log)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql "$base_url" -qc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null 2>&1 || true
    if [ "${BENCH_KEEP_LOG:-0}" = 1 ]; then echo "server log: $log"; else rm -f "$log"; fi
}
trap cleanup EXIT

binary=${BENCH_BINARY:-$root/target/release/retrain}
if [ -z "${BENCH_BINARY:-}" ]; then
    echo "== building the release binary"
    (cd "$root" && cargo build --release -p retrain-api --quiet)
fi

psql "$base_url" -qc "CREATE DATABASE $scratch" >/dev/null
echo "== starting retrain serve --role api on a scratch database ($scratch)"
if [ "${BENCH_LIMITS:-0}" = 1 ]; then
    limits=(--predict-rate 1e9 --predict-burst 1e9 --feedback-rate 1e9 --feedback-burst 1e9 --feedback-hourly-cap 1000000000)
else
    limits=(--feedback-rate 0 --feedback-hourly-cap 0 --feedback-flagged-hourly-cap 0)
fi
DATABASE_URL=$scratch_url RETRAIN_ADMIN_TOKEN=$token RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 \
    "$binary" serve --role api --bind 127.0.0.1:0 "${limits[@]}" >"$log" 2>&1 &
server_pid=$!

address=""
for _ in $(seq 1 600); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "the server exited during startup"; }
    address=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'address=127\.0\.0\.1:[0-9]*' | head -1 | cut -d= -f2 || true)
    if [ -n "$address" ] && curl -fs "http://$address/ready" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fs "http://$address/ready" >/dev/null 2>&1 || { cat "$log" >&2; die "the server did not get ready in 60 s"; }
echo "   ready at http://$address ($(curl -fs "http://$address/ready"))"
key=$(curl -fs "http://$address/keys" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name": "bench", "scopes": ["predict", "feedback"]}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])') \
    || die "cannot make the bench's client key"
echo "   client key made; limits: $([ "${BENCH_LIMITS:-0}" = 1 ] && echo on || echo off); predictions with a key: $([ "${BENCH_PREDICT_KEY:-0}" = 1 ] && echo yes || echo no)"

feedback_rows() { psql "$scratch_url" -qAtc 'SELECT count(*) FROM feedback'; }

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

if [ -n "${BENCH_LEARNER:-}" ]; then
    echo "== training the served model with the learner $BENCH_LEARNER"
    admin=(-H "authorization: Bearer $token" -H 'content-type: application/json')
    model=$(curl -fs "http://$address/model/info" | json_field "['model']")
    DATABASE_URL=$scratch_url RETRAIN_ADMIN_TOKEN=$token NO_COLOR=1 \
        "$binary" serve --role worker --bind 127.0.0.1:0 >"$log.worker" 2>&1 &
    worker_pid=$!
    curl -fs -X PATCH "http://$address/models/$model" "${admin[@]}" -d "{\"learner\": $BENCH_LEARNER}" >/dev/null \
        || die "PATCH /models/$model refused the learner"
    # A run with no new feedback is skipped: send the load's feedback row once.
    BENCH_KEY=$key BENCH_ENDPOINT=feedback wrk -t1 -c1 -d1s -s "$here/wrk.lua" "http://$address" >/dev/null
    run=$(curl -fs -X POST "http://$address/models/$model/runs" "${admin[@]}" -d '{"reason": "bench/http.sh BENCH_LEARNER"}' \
        | json_field "['id']")
    status=running
    for _ in $(seq 1 1800); do
        status=$(curl -fs "http://$address/runs/$run" | json_field "['status']")
        case $status in queued|running) sleep 1 ;; *) break ;; esac
    done
    kill -TERM "$worker_pid"; wait "$worker_pid" 2>/dev/null || true
    rm -f "$log.worker"
    version=$(curl -fs "http://$address/models/$model/versions?limit=1" | json_field "[0]['version']")
    echo "   run $run: $status; promoting version $version by hand"
    curl -fs -X POST "http://$address/models/$model/versions/$version/promote" "${admin[@]}" \
        -d '{"reason": "bench/http.sh serves the learner under test"}' >/dev/null || true
    for _ in $(seq 1 100); do
        [ "$(curl -fs "http://$address/model/info" | json_field "['version']")" = "$version" ] && break
        sleep 0.1
    done
    served=$(curl -fs "http://$address/model/info")
    [ "$(echo "$served" | json_field "['version']")" = "$version" ] || die "version $version is not served: $served"
    echo "   serving $(curl -fs "http://$address/models/$model/versions/$version" | json_field "['selection']['chosen']")"
fi

echo "== machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(psql "$base_url" -qAtc 'SHOW server_version'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "   wrk and the server share the $(nproc) cores (and PostgreSQL with them)"

# Warm up: first connections, allocator, prediction log table.
predict_key=""
[ "${BENCH_PREDICT_KEY:-0}" = 1 ] && predict_key=$key
BENCH_KEY=$predict_key BENCH_ENDPOINT=predict wrk -t"$threads" -c64 -d3s -s "$here/wrk.lua" "http://$address" >/dev/null

failed=0
summary=()
for endpoint in $endpoints; do
    for c in $connections; do
        before=$(feedback_rows)
        echo "== POST /$endpoint, $c connections, $threads wrk threads, ${duration}s"
        send_key=$key
        [ "$endpoint" = predict ] && send_key=$predict_key
        out=$(BENCH_KEY=$send_key BENCH_ENDPOINT=$endpoint wrk -t"$threads" -c"$c" -d"${duration}s" --latency -s "$here/wrk.lua" "http://$address")
        echo "$out" | sed -n '/Latency Distribution/,/^RESULT/p' | grep -v '^RESULT' | sed 's/^/   /'
        result=$(echo "$out" | grep '^RESULT' || true)
        [ -n "$result" ] || { echo "$out"; die "wrk printed no RESULT line"; }
        get() { echo "$result" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
        line=$(printf '%-9s c=%-3s %8s req/s  p50 %7s ms  p99 %7s ms  max %8s ms  non-2xx %s' \
            "/$endpoint" "$c" "$(get rps)" "$(get p50_ms)" "$(get p99_ms)" "$(get max_ms)" "$(get non2xx)")
        echo "   $line"
        errors=$(( $(get connect_errors) + $(get read_errors) + $(get write_errors) + $(get timeouts) ))
        if [ "$(get non2xx)" != 0 ]; then
            echo "   FAILED: $(get non2xx) non-2xx answers; first: $(echo "$out" | grep '^FIRST_NON2XX' | cut -d' ' -f2-)"
            failed=1
        fi
        if [ "$errors" != 0 ]; then
            echo "   FAILED: socket errors: $result"
            failed=1
        fi
        if [ "$endpoint" = feedback ]; then
            # Rows of requests still in flight when wrk stopped may commit
            # without wrk seeing their 201: at most one per connection.
            sleep 1
            stored=$(( $(feedback_rows) - before ))
            created=$(get created)
            extra=$(( stored - created ))
            if [ "$stored" -lt "$created" ]; then
                echo "   FAILED: $created acknowledged but only $stored stored"
                failed=1
            elif [ "$extra" -gt "$c" ]; then
                echo "   FAILED: $stored stored for $created acknowledged (more than $c in flight)"
                failed=1
            else
                echo "   acknowledged $created, stored $stored (in flight at the stop, stored but not seen by wrk: $extra)"
            fi
            line="$line  acked $created stored $stored"
        fi
        summary+=("$line")
    done
done

echo
echo "== summary ($(nproc) cores shared by wrk, server and PostgreSQL; wrk -t$threads -d${duration}s)"
printf '   %s\n' "${summary[@]}"
written=$(curl -fs "http://$address/metrics" | grep -E '^retrain_prediction_log_(written|failed)' | tr '\n' ' ')
echo "   prediction log: $written"
[ "$failed" = 0 ] || die "some requests failed (see above)"
