"""Customers: identities, consents, search, the timeline."""
