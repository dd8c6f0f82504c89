"""Reads for the pages: lists, stats, explanations. No writes here."""
