"""Persistence: SQLAlchemy tables and the repositories that are the only code writing SQL."""
