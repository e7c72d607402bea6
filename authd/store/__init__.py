"""The store contract and its backends (memory, SQLite, PostgreSQL), and the journal followers and nodes on them."""
