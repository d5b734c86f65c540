"""Drives Keel's /v1 API with the official RudderStack Python SDK
(rudder-sdk-python) at its default settings (gzip on, batches of 100 up to
its own 4 MB limit, 10 000 queued), as a customer's backend would.

    rudder_client.py HOST WRITE_KEY EVENTS

400 users in 20 accounts. Half are grouped before they do anything; the
other half send their first events before the `group` call that names
their account (as a product does before the sign-up finishes), then more
after it. Every 50th event carries a 40 KB property. Message ids are
fixed, so running it twice sends the same messages twice. Prints a JSON
summary; exits 1 if the SDK reported any error or dropped a message.
"""
import json
import sys

import rudderstack.analytics as rudder

host, key, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []


def on_error(error, batch):
    errors.append((repr(error), len(batch)))


rudder.write_key = key
rudder.dataPlaneUrl = host
rudder.on_error = on_error

USERS = 400
EARLY = USERS // 2  # users grouped before their first event
dropped = 0


def group(u):
    rudder.group(user_id=f"user-{u}", group_id=f"acct-{u % 20:02d}", traits={"name": f"Account {u % 20}"},
                 message_id=f"group-{u}")


def track(i):
    u = i % USERS
    properties = {"n": i}
    if i % 50 == 0:
        properties["blob"] = "x" * 40_000
    rudder.track(user_id=f"user-{u}", event=("report_viewed", "dashboard_shared", "task_completed")[i % 3],
                 properties=properties, message_id=f"event-{i}")


for u in range(EARLY):
    group(u)
for i in range(events):
    if i == events // 2:
        # The late users' group calls arrive after their first half of events.
        rudder.flush()
        for u in range(EARLY, USERS):
            group(u)
    track(i)
    if i % 5_000 == 4_999:
        # The SDK's default queue holds 10 000; wait for it to drain.
        rudder.flush()
rudder.flush()
rudder.shutdown()
print(json.dumps({"sent": events, "errors": len(errors), "first_errors": errors[:3]}))
sys.exit(1 if errors else 0)
