"""The worker's one logger.

Its name is the one the ``start`` command and applications configure
(``flask_taches.manager``), whichever module of the worker logs.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "flask_taches.manager"

logger = logging.getLogger(LOGGER_NAME)
