"""`ecgpipe serve`: the clinicians' read-only HTTP API (FastAPI) and the live page of a stack."""
