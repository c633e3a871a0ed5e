#!/usr/bin/env python3
"""The Rotten Tomatoes learning curve through the service (issue 11).

Against a running Retrain (URL and admin token as arguments), with the
files bench/text_reviews.py wrote: creates the text model `reviews` from
base.csv with golden.csv as its golden set (`retrain models create ...
--golden`), then replays pool.csv as users' feedback in rounds, triggers a
run after each round and prints the golden accuracy the gate measured for
the round's candidate (and whether it was promoted): a learning curve on
the same split scikit-learn's figures in the issue use. The model's own
threshold is 1, so each round's run passes collect; start the service with
RETRAIN_FIRST_CHECK_SECS large, so only these runs run.

    python3 bench/reviews_curve.py RETRAIN_BINARY URL TOKEN DIR [ROUNDS]

Standard library only; 16 feedback requests in flight.
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


def golden_of(run):
    validate = next((s for s in run["steps"] if s["name"] == "validate"), {})
    return ((validate.get("output") or {}).get("candidate") or {}).get("accuracy")


def main(binary, url, token, folder, rounds=5):
    created = subprocess.run(
        [binary, "models", "create", "reviews", "--kind", "text", "--data", f"{folder}/base.csv",
         "--golden", f"{folder}/golden.csv", "--threshold", "1", "--url", url, "--token", token, "--json"],
        check=True, capture_output=True, text=True)
    first = json.loads(created.stdout)
    print(f"round 0: base only, {sum(c['base'] for c in first['import']['classes'].values())} documents, "
          f"golden accuracy {golden_of(first['run']):.4f} ({first['run']['status']})")
    with open(f"{folder}/pool.csv", newline="", encoding="utf-8") as f:
        pool = list(csv.DictReader(f))
    size = -(-len(pool) // rounds)
    sent = 0
    with ThreadPoolExecutor(16) as workers:
        for r in range(1, rounds + 1):
            chunk = pool[(r - 1) * size: r * size]
            list(workers.map(lambda row: call(f"{url}/models/reviews/feedback", None, "POST",
                                              {"text": row["text"], "correct_label": row["label"]}), chunk))
            sent += len(chunk)
            started = time.time()
            run = call(f"{url}/models/reviews/runs", token, "POST", {"reason": f"round {r}"})
            run = wait_for(url, token, run["id"])
            print(f"round {r}: {sent} feedback rows, candidate golden accuracy {golden_of(run):.4f}, "
                  f"run {run['status']} in {time.time() - started:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], *(int(a) for a in sys.argv[5:6]))
