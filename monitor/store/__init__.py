"""Storage: tables, engines and migrations, the batching writer, queries, retention, rollups.

Sessions are owned by the caller; query functions take a session.
"""
