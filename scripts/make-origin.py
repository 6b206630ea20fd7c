#!/usr/bin/env python3
"""Writes an origin directory for edge-server from a JSON-lines log: one file of SIZE random
bytes per distinct content_id, named by it.

    python3 scripts/make-origin.py LOG DIR SIZE
"""
import json
import os
import sys

if len(sys.argv) != 4:
    sys.exit(__doc__.strip())
log, origin, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(origin, exist_ok=True)
with open(log) as f:
    items = sorted({json.loads(line)["content_id"] for line in f if line.strip()})
for item in items:
    with open(os.path.join(origin, item), "wb") as out:
        out.write(os.urandom(size))
