"""Conversations, messages, notes, tags, the inbound ingest path and the outbox."""
