"""Where finished traces are kept and searched: in memory, SQLite, JSONL, PostgreSQL."""
