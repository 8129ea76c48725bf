"""Benchmarks of flask-taches, run by hand: ``.venv/bin/python bench/run.py``."""
