"""Drives Keel's /v1 API with the official Segment Python client
(segment-analytics-python), as a customer's backend would.

    segment_client.py HOST WRITE_KEY EVENTS

Sends one `group` call per user (500 users in 20 accounts), then EVENTS
`track` calls with fixed message ids, so running it twice sends the same
messages twice. Prints a JSON summary; exits 1 if the client reported any
error.
"""
import json
import sys

from segment.analytics.client import Client

host, key, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []


def on_error(error, batch):
    errors.append((repr(error), len(batch)))


client = Client(key, host=host, max_queue_size=events + 10_000, on_error=on_error, upload_size=100)
for u in range(500):
    client.group(user_id=f"user-{u}", group_id=f"acct-{u % 20:02d}", traits={"name": f"Account {u % 20}"},
                 message_id=f"group-{u}")
for i in range(events):
    client.track(user_id=f"user-{i % 500}", event=("report_viewed", "dashboard_shared", "task_completed")[i % 3],
                 properties={"n": i}, message_id=f"event-{i}")
client.flush()
client.join()
print(json.dumps({"sent": events, "errors": len(errors), "first_errors": errors[:3]}))
sys.exit(1 if errors else 0)
