#!/usr/bin/env python3
"""Learning curves through the service (issues 11 and 12).

Against a running Retrain (URL and admin token as arguments), replays a
pool of true rows as users' feedback in rounds, triggers a run after each
round and prints the golden accuracy the gate measured for the round's
candidate, whether it was promoted, and the golden accuracy of the model
served after the round (which must never fall):

- `reviews DIR`: with the files bench/text_reviews.py wrote, creates the
  text model `reviews` from base.csv with golden.csv as its golden set
  (`retrain models create ... --golden`) and replays pool.csv, the split
  scikit-learn's figures in issue 11 use;
- `wine DATABASE_URL`: the bootstrapped `wine-quality` model, replaying its
  stored pool split (read with psql from the service's database).

The model's threshold is set to 1, so each round's run passes collect;
start the service with RETRAIN_FIRST_CHECK_SECS large, so only these runs
run.

    python3 bench/learning_curve.py RETRAIN_BINARY URL TOKEN reviews DIR [ROUNDS]
    python3 bench/learning_curve.py RETRAIN_BINARY URL TOKEN wine DATABASE_URL [ROUNDS]

Standard library only (and psql for wine); 16 feedback requests in flight.
"""
import csv
import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def call(url, token, method="GET", body=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def wait_for(url, token, run_id):
    while True:
        run = call(f"{url}/runs/{run_id}", token)
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.2)


def golden_of(run, which="candidate"):
    validate = next((s for s in run["steps"] if s["name"] == "validate"), {})
    return ((validate.get("output") or {}).get(which) or {}).get("accuracy")


def reviews(binary, url, token, folder):
    """Creates the reviews model; its pool as feedback bodies and version 1's golden accuracy."""
    created = subprocess.run(
        [binary, "models", "create", "reviews", "--kind", "text", "--data", f"{folder}/base.csv",
         "--golden", f"{folder}/golden.csv", "--threshold", "1", "--url", url, "--token", token, "--json"],
        check=True, capture_output=True, text=True)
    first = json.loads(created.stdout)
    with open(f"{folder}/pool.csv", newline="", encoding="utf-8") as f:
        pool = [{"text": row["text"], "correct_label": row["label"]} for row in csv.DictReader(f)]
    return "reviews", pool, golden_of(first["run"])


def wine(url, token, database_url):
    """The wine model's stored pool split as feedback bodies, and its champion's golden accuracy."""
    rows = subprocess.run(
        ["psql", database_url, "-At", "-F", ";", "-c",
         "SELECT array_to_string(e.features, ','), e.label FROM examples e "
         "JOIN datasets d ON d.id = e.dataset_id JOIN models m ON m.id = d.model_id "
         "WHERE m.name = 'wine-quality' AND e.split = 'pool' ORDER BY e.id"],
        check=True, capture_output=True, text=True).stdout.splitlines()
    pool = [{"features": [float(x) for x in f.split(",")], "correct_label": label}
            for f, label in (r.split(";") for r in rows)]
    model = call(f"{url}/models/wine-quality", token, "PATCH", {"threshold": 1})
    champion = call(f"{url}/models/wine-quality/versions/{model['champion_version']}", token)
    return "wine-quality", pool, champion["golden_accuracy"]


def main(binary, url, token, which, where, rounds=5):
    name, pool, served = reviews(binary, url, token, where) if which == "reviews" else wine(url, token, where)
    print(f"round 0: base only, golden accuracy {served:.4f}")
    size = -(-len(pool) // rounds)
    sent = 0
    with ThreadPoolExecutor(16) as workers:
        for r in range(1, rounds + 1):
            chunk = pool[(r - 1) * size: r * size]
            list(workers.map(lambda body: call(f"{url}/models/{name}/feedback", token, "POST", body), chunk))
            sent += len(chunk)
            started = time.time()
            run = call(f"{url}/models/{name}/runs", token, "POST", {"reason": f"round {r}"})
            run = wait_for(url, token, run["id"])
            candidate = golden_of(run)
            if run["status"] == "succeeded":
                served = candidate
            print(f"round {r}: {sent} feedback rows, candidate golden accuracy {candidate:.4f}, "
                  f"run {run['status']} in {time.time() - started:.2f} s, served golden accuracy {served:.4f}",
                  flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6], *(int(a) for a in sys.argv[6:7]))
