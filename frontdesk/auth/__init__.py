"""Users, roles, browser sessions, API tokens."""
