"""The outage lab: processes, the broker, inspection, the ledger and the CLI."""
