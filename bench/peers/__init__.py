"""The peers of the side-by-side benchmark: their no-op tasks and one client for all.

Nothing here is imported by flask-taches or by its tests: each module but
:mod:`.report` imports a peer's library, installed in the benchmark's own
virtualenv (``bench/.peers-venv``, made by ``bench/side_by_side.py``).
"""
