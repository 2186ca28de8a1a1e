"""What `aws logs tail --follow` (AWS CLI v2) does, done with boto3 against vpclab:
page through FilterLogEvents from a start time (interleaved, following nextToken),
then poll again from the newest timestamp seen, dropping the event ids already printed
(events that share that timestamp come back). Run by tests/api/logs.rs with
VPCLAB_ENDPOINT set; prints each event it "tails" and `ok` at the end."""

import os
import sys
import time

try:
    import boto3
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

logs = boto3.client("logs", endpoint_url=os.environ["VPCLAB_ENDPOINT"], region_name="us-east-1")
group = "/tail/app"
logs.create_log_group(logGroupName=group)
for s in ("web-1", "web-2"):
    logs.create_log_stream(logGroupName=group, logStreamName=s)

now = int(time.time() * 1000)
start = now - 60_000


def put(stream, *events):
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": t, "message": m} for t, m in events],
    )


def poll(since, seen, pattern=None):
    """One round of the CLI's follow loop: every event from `since` on, one small page
    at a time, minus the ids already printed. Returns the new events in order."""
    kw = {"logGroupName": group, "startTime": since, "interleaved": True, "limit": 2}
    if pattern:
        kw["filterPattern"] = pattern
    new = []
    pages = 0
    while True:
        r = logs.filter_log_events(**kw)
        pages += 1
        for e in r["events"]:
            if e["eventId"] not in seen:
                seen.add(e["eventId"])
                new.append(e)
        token = r.get("nextToken")
        if not token:
            break
        kw["nextToken"] = token
        assert pages < 50, "nextToken never ends"
    return new


put("web-1", (now - 3000, "GET / 200"), (now - 1000, "GET /a 200"))
put("web-2", (now - 2000, "GET /b 500"), (now - 1000, "GET /c 200"))
seen = set()
first = poll(start, seen)
msgs = [e["message"] for e in first]
# Interleaved by time across the two streams; equal timestamps in arrival order.
assert msgs == ["GET / 200", "GET /b 500", "GET /a 200", "GET /c 200"], msgs
assert [e["logStreamName"] for e in first] == ["web-1", "web-2", "web-1", "web-2"]
for e in first:
    print("tail", e["logStreamName"], e["message"])

# New events arrive, one of them at the newest timestamp already printed.
latest = max(e["timestamp"] for e in first)
put("web-1", (latest, "GET /late 200"), (now + 500, "GET /new 200"))
second = poll(latest, seen)
msgs = [e["message"] for e in second]
assert msgs == ["GET /late 200", "GET /new 200"], msgs
for e in second:
    print("tail", e["logStreamName"], e["message"])

# Caught up: nothing new.
assert poll(max(e["timestamp"] for e in second), seen) == []

# `--filter-pattern` goes through the same calls.
errors = poll(start, set(), pattern="500")
assert [e["message"] for e in errors] == ["GET /b 500"], errors
print("ok")
