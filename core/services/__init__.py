"""The use-case layer beside ``core.jobs``: stored datasets and models, uploads, API keys,
projects, idempotency records and the serving catalog. These own sessions; only
``core.store`` builds queries."""
