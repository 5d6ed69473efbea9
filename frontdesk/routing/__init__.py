"""Routing: queues, skills, presence, capacity; core.py holds the pure decision core."""
