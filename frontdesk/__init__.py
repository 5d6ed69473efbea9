"""Frontdesk: an open-source omnichannel, proactive customer-service platform."""

__version__ = "0.1.0"
