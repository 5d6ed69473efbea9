"""Full-text search over customers and conversations (SQLite FTS5 / PostgreSQL GIN on tsvector)."""
