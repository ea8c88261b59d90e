"""Reliability suite: every test records what it tried and observed (see observations.py)."""
