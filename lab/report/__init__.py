"""What a user reads: the ledger, inspect, status, the report, and figures on ECG paper."""
