"""Rejected inputs: what the intakes refused, kept within limits; admins list, download, replay and discard them."""
