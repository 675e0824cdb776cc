"""Job use cases shared by the API (submit, cancel, read) and the workers (run)."""
