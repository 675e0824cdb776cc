"""Celery workers: thin task adapters over ``core`` job functions."""
