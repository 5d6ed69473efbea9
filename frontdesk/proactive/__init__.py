"""Proactive service: customer events, journeys, the contact policy."""
