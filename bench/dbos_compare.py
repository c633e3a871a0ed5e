"""The engine beside DBOS Transact: a five-step no-op workflow, one at a
time and from 16 threads, on the same PostgreSQL, printed in one table with
the engine's figures from its own bench (engine_overhead).

    python3 -m venv bench/.venv && bench/.venv/bin/pip install dbos==3.4.0
    bench/.venv/bin/python bench/dbos_compare.py [--seq 300] [--runs 2000] [--skip-engine]

DBOS works in a scratch database retrain_dbos_<random> (from DATABASE_URL,
default postgres://postgres@127.0.0.1:5432/postgres), dropped at the end.
A DBOS workflow runs in the thread that calls it, each step's result and the
workflow's status written to its system tables; the engine's runs are
queued and executed by a worker (`Worker::run`), latency from `create_run`
returning to the run seen ended. The engine's rows come from
`cargo bench -p retrain-engine --bench engine_overhead` with the same
counts (16 pipelines kept busy, like 16 threads).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from dbos import DBOS

BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@DBOS.step()
def noop():
    return {}


@DBOS.workflow()
def five_steps():
    for _ in range(5):
        noop()


def timed_run():
    started = time.perf_counter()
    five_steps()
    return (time.perf_counter() - started) * 1e3


def sequential(warmup, runs):
    for _ in range(warmup):
        five_steps()
    started = time.perf_counter()
    latencies = [timed_run() for _ in range(runs)]
    return runs / (time.perf_counter() - started), latencies


def concurrent(threads, runs):
    latencies, lock = [], threading.Lock()
    per_thread = runs // threads

    def work():
        mine = [timed_run() for _ in range(per_thread)]
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return per_thread * threads / (time.perf_counter() - started), latencies


def row(label, rate, latencies):
    cuts = statistics.quantiles(latencies, n=100)
    return (label, rate, statistics.median(latencies), cuts[89], cuts[98])


def engine_rows(seq, runs):
    """The engine's Worker::run rows, from its own bench."""
    command = ["cargo", "bench", "-q", "-p", "retrain-engine", "--bench", "engine_overhead", "--",
               "--seq", str(seq), "--runs", str(runs), "--workers", "2", "--pipelines", "16",
               "--profile", "0"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rows = []
    for label, pattern in [("engine, one at a time (Worker::run)", r"1 one at a time, Worker::run"),
                           ("engine, 16 pipelines, 2 workers", r"2 throughput, 2 workers, 16 pipelines")]:
        line = next(l for l in out.splitlines() if re.match(r"\s+" + pattern + r"\s+\d", l))
        numbers = [float(x) for x in line.split()[-9:-4]]  # runs runs/s p50 p90 p99
        rows.append((label, numbers[1], numbers[2], numbers[3], numbers[4]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=300, help="workflows one at a time (after 20 warm-up)")
    parser.add_argument("--runs", type=int, default=2000, help="workflows from 16 threads")
    parser.add_argument("--skip-engine", action="store_true", help="only DBOS")
    args = parser.parse_args()

    name = "retrain_dbos_" + uuid.uuid4().hex[:12]
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    rows = []
    try:
        DBOS(config={"name": "retrain-compare", "system_database_url": with_database(BASE_URL, name),
                     "log_level": "WARNING"})
        DBOS.launch()
        rows.append(row("DBOS Transact, one at a time", *sequential(20, args.seq)))
        rows.append(row("DBOS Transact, 16 threads", *concurrent(16, args.runs)))
        DBOS.destroy()
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not args.skip_engine:
        rows.extend(engine_rows(args.seq, args.runs))
    print(f"{'five-step no-op workflow':<40} {'runs/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for label, rate, p50, p90, p99 in rows:
        print(f"{label:<40} {rate:>8.1f} {p50:>8.2f} {p90:>8.2f} {p99:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
