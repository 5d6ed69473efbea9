"""Webhook subscriptions: conversation and message events pushed to integrators, signed and retried."""
