"""What a user reads: the ledger, `inspect`, `status`, the report, and the figures drawn on ECG paper."""
