"""flask-taches: background tasks kept in the application's own SQL database."""

from __future__ import annotations

from .exceptions import (
    ConfigurationError,
    FichierRefused,
    InvalidTache,
    InvalidTransition,
    MethodNotFound,
    MethodRefused,
    MissingArgument,
    NotAllowed,
    ParametresNotJSON,
    TacheError,
    TacheNotFound,
    UncommittedSession,
)
from .extension import TachesExtension
from .models import Tache
from .status import Status

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "FichierRefused",
    "InvalidTache",
    "InvalidTransition",
    "MethodNotFound",
    "MethodRefused",
    "MissingArgument",
    "NotAllowed",
    "ParametresNotJSON",
    "Status",
    "Tache",
    "TacheError",
    "TacheNotFound",
    "TachesExtension",
    "UncommittedSession",
    "__version__",
]
