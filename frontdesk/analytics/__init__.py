"""Figures for supervisors: the live wallboard (and, later, reports)."""
