"""The companion's memory: the SQLite store, facts, summaries, recall, the prompt window and its worker."""
