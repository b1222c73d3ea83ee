"""Watching a running stack: `ecgpipe logs` (logs.py), `ecgpipe tail` (tail.py) and the refreshing
views behind `status --watch` and `inspect devices --watch` (live.py, views.py)."""
