"""Writes: run an extraction, invalidate entries, replay an entry."""
