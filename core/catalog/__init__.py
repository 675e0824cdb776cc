"""Use cases over stored datasets, models and indexes (the registry behind the API)."""
