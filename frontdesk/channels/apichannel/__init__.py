"""The API channel: integrators post inbound messages (signed) and receive outbound ones by webhook."""
