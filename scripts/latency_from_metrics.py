#!/usr/bin/env python3
"""Adds the event -> stored-state latency percentiles, read off the server's
keel_event_to_state_seconds histogram, to a load report.

    latency_from_metrics.py METRICS.txt LOAD_REPORT_JSON

Percentiles are the upper bound of the bucket they fall in (buckets every 100 ms between 0.3 s and 1 s),
so they are upper bounds, in milliseconds.
"""
import json
import sys

text, report = open(sys.argv[1]).read(), json.loads(sys.argv[2])
buckets = []
for line in text.splitlines():
    if line.startswith("keel_event_to_state_seconds_bucket"):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
total = buckets[-1][1] if buckets else 0
if total:
    for name, q in (("state_p50_ms", 0.5), ("state_p99_ms", 0.99)):
        report[name] = next(le for le, n in buckets if n >= q * total) * 1000
    report["state_samples"] = total
print(json.dumps(report))
