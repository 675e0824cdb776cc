"""The ``embedtune`` command line."""
