"""Benchmarks, run as scripts from the project root: `.venv/bin/python benchmarks/hit_path.py`."""
