"""Workforce management: Erlang staffing maths and queue simulation."""
