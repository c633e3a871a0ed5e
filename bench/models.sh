#!/usr/bin/env bash
# Why this exists: issue 11 sets targets for models users bring: importing
# 1M tabular rows (CSV, 12 columns) in under 20 s with flat memory, and a
# text model's /predict at 64 connections >= 20,000 req/s with p99 < 5 ms.
# This measures both the way a user meets them, on the release binary:
#   1. import: a generated 1M-row CSV (11 numeric columns and a label) sent
#      to `POST /models` of `retrain serve --role api` (no worker, so the
#      run the import queues does not train meanwhile); wall time of the
#      upload-to-answer, and the server's resident memory before and at its
#      peak (VmHWM) from /proc;
#   2. text predict: `retrain demo --keep-serving` (which creates the text
#      model support-tickets), then wrk at 64 connections against it.
#
#   bench/models.sh            # needs PostgreSQL on 127.0.0.1:5432 (trust), wrk, python3
#
# Knobs: DATABASE_URL (a server URL; scratch databases are made next to its
# database and dropped), BENCH_ROWS (1000000), BENCH_DURATION (15).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
base_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
rows=${BENCH_ROWS:-1000000}
duration=${BENCH_DURATION:-15}
token=bench-admin-token-0123456789abcdef
binary="$root/target/release/retrain"
url_path=${base_url%%\?*}
work=$(mktemp -d -t retrain-bench-models.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for db in retrain_bench_import_$$ retrain_bench_text_$$; do
        psql "$base_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
[ -x "$binary" ] || (cd "$root" && cargo build --release --locked -p retrain-api)
command -v wrk >/dev/null || { echo "bench/models.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }

address_of() { # log file -> host:port once the server listens
    for _ in $(seq 1 600); do
        a=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o 'address=127\.0\.0\.1:[0-9]*' | head -1 | cut -d= -f2 || true)
        [ -n "$a" ] && curl -fs "http://$a/health" >/dev/null 2>&1 && { echo "$a"; return; }
        sleep 0.2
    done
    cat "$1" >&2; exit 1
}
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

echo "== machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%dT%H:%MZ)"

echo "== 1. import $rows rows (CSV, 12 columns) through POST /models"
python3 - "$rows" > "$work/rows.csv" <<'PY'
import random, sys
n = int(sys.argv[1]); rng = random.Random(11)
out = sys.stdout
out.write(",".join(f"x{i}" for i in range(11)) + ",label\n")
for _ in range(n):
    xs = [round(rng.uniform(0, 100), 3) for _ in range(11)]
    label = "high" if xs[0] + xs[1] > 110 else ("mid" if xs[2] > 50 else "low")
    out.write(",".join(map(str, xs)) + "," + label + "\n")
PY
echo "   file: $(du -m "$work/rows.csv" | cut -f1) MiB"
db=retrain_bench_import_$$
psql "$base_url" -qc "CREATE DATABASE $db" >/dev/null
DATABASE_URL="${url_path%/*}/$db" RETRAIN_ADMIN_TOKEN=$token RUST_LOG=info NO_COLOR=1 \
    "$binary" serve --role api --bind 127.0.0.1:0 >"$work/import.log" 2>&1 &
pids+=($!); server=$!
address=$(address_of "$work/import.log")
before=$(rss_kib "$server" VmRSS)
start=$(date +%s.%N)
status=$(curl -s -o "$work/import.json" -w '%{http_code}' -X POST \
    "http://$address/models?name=bench-import&kind=tabular&label=label" \
    -H "Authorization: Bearer $token" -H 'content-type: text/csv' --data-binary @"$work/rows.csv")
end=$(date +%s.%N)
peak=$(rss_kib "$server" VmHWM)
[ "$status" = 201 ] || { cat "$work/import.json"; exit 1; }
stored=$(psql "${url_path%/*}/$db" -qAtc "SELECT count(*) FROM examples")
printf '   answered 201 in %.2f s; %s rows stored; server RSS %d MiB before, peak %d MiB\n' \
    "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$stored" $((before / 1024)) $((peak / 1024))
kill -TERM "$server"; wait "$server" 2>/dev/null || true

echo "== 2. text /predict at 64 connections (support-tickets, from the demo)"
db=retrain_bench_text_$$
port=$((20000 + $$ % 20000))
DATABASE_URL="${url_path%/*}/$db" RUST_LOG=warn NO_COLOR=1 \
    "$binary" demo --keep-serving --bind 127.0.0.1:$port >"$work/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q 'keeps running' "$work/demo.log" && break; sleep 0.2; done
grep -q 'keeps running' "$work/demo.log" || { cat "$work/demo.log"; exit 1; }
BENCH_ENDPOINT=text wrk -t2 -c64 -d3s -s "$here/wrk.lua" "http://127.0.0.1:$port" >/dev/null
for endpoint in text predict; do
    out=$(BENCH_ENDPOINT=$endpoint wrk -t2 -c64 -d"${duration}s" --latency -s "$here/wrk.lua" "http://127.0.0.1:$port")
    echo "   $endpoint: $(echo "$out" | grep RESULT)"
    echo "$out" | grep -q 'non2xx=0 ' || { echo "$out"; exit 1; }
done
