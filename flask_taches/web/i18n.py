"""Labels of the web pages, in English and French.

The language is Flask-Babel's current locale when the application uses
Flask-Babel, else ``TACHES_LOCALE``; any language other than French falls back
to English. The French status labels are the bundle's own, so its users read
the same words as before.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import current_app, has_app_context

from ..status import Status

DEFAULT_LANGUAGE = "en"

STATUS_LABELS: dict[str, dict[str, str]] = {
    "en": {
        Status.WAITING.value: "Waiting for the previous task",
        Status.TO_RUN.value: "Queued",
        Status.RUNNING.value: "Running",
        Status.COMPLETED.value: "Completed",
        Status.FAILED.value: "Failed",
        Status.INTERRUPTED.value: "Interrupted",
        Status.CANCELLED.value: "Cancelled",
    },
    "fr": {
        Status.WAITING.value: "En attente de la tâche précédente",
        Status.TO_RUN.value: "En attente",
        Status.RUNNING.value: "En cours",
        Status.COMPLETED.value: "Terminé",
        Status.FAILED.value: "En erreur",
        Status.INTERRUPTED.value: "Interrompu",
        Status.CANCELLED.value: "Annulé",
    },
}

#: Every other text of the pages, by key. ``{name}`` fields are filled by :func:`text`.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "action.cancel": "Cancel",
        "action.restart": "Restart",
        "action.delete": "Delete",
        "confirm.cancel": "Cancel task {id}?",
        "confirm.restart": "Restart task {id}?",
        "confirm.delete": "Delete task {id}?",
        "confirm.delete_with_file": "Delete task {id} and its attached file?",
        "confirm.cancel_all": "Cancel the {n} waiting and running tasks this filter selects?",
        "confirm.restart_failed": "Restart the {n} failed tasks this filter selects?",
        "confirm.delete_finished": (
            "Delete the {n} finished tasks this filter selects, and their files?"
        ),
        "cancel_all": "Cancel waiting and running ({n})",
        "restart_failed": "Restart failed ({n})",
        "delete_finished": "Delete finished ({n})",
        "report.cancelled": "{n} cancelled",
        "report.stopping": "{n} asked to stop",
        "report.too_late": "{n} already finished (too late to cancel)",
        "report.restarted": "{n} restarted",
        "report.deleted": "{n} deleted",
        "report.skipped": "{n} skipped",
        "reason": "Reason",
        "progress.phase": "phase {phase}/{phases}",
        "progress.done": "done",
        "progress.stopped": "stopped",
        "gone": "Task {id} no longer exists.",
        "dashboard.counts": "By status",
        "dashboard.queues": "Waiting or running, by queue",
        "dashboard.managers": "Managers",
        "dashboard.no_manager": "No live manager: nothing runs the ready tasks.",
        "manager.host": "Host",
        "manager.running": "Running",
        "manager.queues": "Queues",
        "manager.since": "Since",
        "dashboard.all": "all",
        "dashboard.chart": "Last hour: tasks ended per minute",
        "dashboard.chart_total": "{completed} completed, {failed} failed in the last hour",
        "dashboard.times": "Times",
        "dashboard.utc": "UTC",
        "dashboard.local": "local",
        "dashboard.prefix": "starts with",
        "field.duration": "Duration",
        "in": "in {duration}",
        "ago": "{duration} ago",
        "cancel_requested": "stopping…",
        "eta": "about {duration} left",
        "dashboard.title": "Tasks",
        "dashboard.empty": "No task matches.",
        "dashboard.filter": "Filter",
        "dashboard.reset": "Reset",
        "dashboard.any": "any",
        "dashboard.newer": "← Newer",
        "dashboard.older": "Older →",
        "dashboard.newest": "Newest",
        "tache.title": "Task {id}",
        "tache.back": "All tasks",
        "field.id": "Id",
        "field.method": "Method",
        "field.signature": "Signature",
        "field.owner": "Owner",
        "field.queue": "Queue",
        "field.status": "Status",
        "field.priority": "Priority",
        "field.attempts": "Attempts",
        "field.timeout": "Time limit",
        "field.created_at": "Created",
        "field.run_at": "Not before",
        "field.started_at": "Started",
        "field.ended_at": "Ended",
        "field.heartbeat_at": "Last heartbeat",
        "field.host": "Host / pid",
        "field.fichier": "Attached file",
        "field.parametres": "Parameters",
        "field.result": "Result",
        "field.logs": "Logs",
        "field.chain": "Chain",
        "chain.previous": "after task {id}",
        "chain.next": "then task {id}",
        "logs.empty": "No log yet.",
        "logs.details": "details",
        "none": "—",
        "shared": "shared",
        "seconds": "{n} s",
        "minutes": "{n} min",
        "hours": "{h} h {m:02d}",
        "level.info": "info",
        "level.notice": "notice",
        "level.warning": "warning",
        "level.error": "error",
        "level.critical": "critical",
    },
    "fr": {
        "action.cancel": "Annuler",
        "action.restart": "Relancer",
        "action.delete": "Supprimer",
        "confirm.cancel": "Annuler la tâche {id} ?",
        "confirm.restart": "Relancer la tâche {id} ?",
        "confirm.delete": "Supprimer la tâche {id} ?",
        "confirm.delete_with_file": "Supprimer la tâche {id} et son fichier joint ?",
        "confirm.cancel_all": (
            "Annuler les {n} tâches en attente et en cours que ce filtre retient ?"
        ),
        "confirm.restart_failed": "Relancer les {n} tâches en erreur que ce filtre retient ?",
        "confirm.delete_finished": (
            "Supprimer les {n} tâches finies que ce filtre retient, et leurs fichiers ?"
        ),
        "cancel_all": "Annuler l'attente et les en-cours ({n})",
        "restart_failed": "Relancer les erreurs ({n})",
        "delete_finished": "Supprimer les finies ({n})",
        "report.cancelled": "{n} annulée(s)",
        "report.stopping": "{n} en cours d'arrêt",
        "report.too_late": "{n} déjà finie(s) (trop tard pour annuler)",
        "report.restarted": "{n} relancée(s)",
        "report.deleted": "{n} supprimée(s)",
        "report.skipped": "{n} ignorée(s)",
        "reason": "Raison",
        "progress.phase": "phase {phase}/{phases}",
        "progress.done": "fini",
        "progress.stopped": "arrêté",
        "gone": "La tâche {id} n'existe plus.",
        "dashboard.counts": "Par statut",
        "dashboard.queues": "En attente ou en cours, par file d'attente",
        "dashboard.managers": "Gestionnaires",
        "dashboard.no_manager": "Aucun gestionnaire actif : rien ne lance les tâches.",
        "manager.host": "Hôte",
        "manager.running": "En cours",
        "manager.queues": "Files",
        "manager.since": "Depuis",
        "dashboard.all": "toutes",
        "dashboard.chart": "Dernière heure : tâches finies par minute",
        "dashboard.chart_total": "{completed} terminées, {failed} en erreur sur la dernière heure",
        "dashboard.times": "Heures",
        "dashboard.utc": "UTC",
        "dashboard.local": "locales",
        "dashboard.prefix": "commence par",
        "field.duration": "Durée",
        "in": "dans {duration}",
        "ago": "il y a {duration}",
        "cancel_requested": "arrêt en cours…",
        "eta": "environ {duration} restantes",
        "dashboard.title": "Tâches",
        "dashboard.empty": "Aucune tâche ne correspond.",
        "dashboard.filter": "Filtrer",
        "dashboard.reset": "Réinitialiser",
        "dashboard.any": "toutes",
        "dashboard.newer": "← Plus récentes",
        "dashboard.older": "Plus anciennes →",
        "dashboard.newest": "Les plus récentes",
        "tache.title": "Tâche {id}",
        "tache.back": "Toutes les tâches",
        "field.id": "Id",
        "field.method": "Méthode",
        "field.signature": "Signature",
        "field.owner": "Propriétaire",
        "field.queue": "File d'attente",
        "field.status": "Statut",
        "field.priority": "Priorité",
        "field.attempts": "Tentatives",
        "field.timeout": "Durée maximale",
        "field.created_at": "Création",
        "field.run_at": "Pas avant",
        "field.started_at": "Début",
        "field.ended_at": "Fin",
        "field.heartbeat_at": "Dernier signe de vie",
        "field.host": "Hôte / pid",
        "field.fichier": "Fichier joint",
        "field.parametres": "Paramètres",
        "field.result": "Résultat",
        "field.logs": "Journal",
        "field.chain": "Enchaînement",
        "chain.previous": "après la tâche {id}",
        "chain.next": "puis la tâche {id}",
        "logs.empty": "Pas encore de journal.",
        "logs.details": "détails",
        "none": "—",
        "shared": "partagée",
        "seconds": "{n} s",
        "minutes": "{n} min",
        "hours": "{h} h {m:02d}",
        "level.info": "info",
        "level.notice": "note",
        "level.warning": "avertissement",
        "level.error": "erreur",
        "level.critical": "critique",
    },
}

LANGUAGES = tuple(MESSAGES)


def normalize(locale: Any) -> str:
    """``"fr_FR"``, ``"fr-CA"``, a Babel ``Locale``... → ``"fr"``; unknown → English."""
    language = getattr(locale, "language", None) or str(locale or "")
    language = language.replace("-", "_").split("_")[0].lower()
    return language if language in MESSAGES else DEFAULT_LANGUAGE


def current_language() -> str:
    """Flask-Babel's locale when the app has Flask-Babel, else ``TACHES_LOCALE``.

    Asked for every text of every fragment (some 20 per dashboard row): the
    proxy is resolved once, and a setting's language is worked out once.
    """
    if not has_app_context():
        return DEFAULT_LANGUAGE
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "babel" in app.extensions:
        from flask_babel import get_locale  # only for apps that use Flask-Babel

        locale = get_locale()
        if locale is not None:
            return normalize(locale)
    setting = app.config.get("TACHES_LOCALE")
    return _setting_language(setting) if isinstance(setting, str | None) else normalize(setting)


@functools.lru_cache(maxsize=32)
def _setting_language(setting: str | None) -> str:
    return normalize(setting)


def status_label(status: Any, language: str | None = None) -> str:
    """The badge text of a status (a :class:`Status` or its string)."""
    value = getattr(status, "value", status)
    labels = STATUS_LABELS[language or current_language()]
    return labels.get(str(value), str(value))


def text(key: str, language: str | None = None, **fields: Any) -> str:
    """The page text ``key`` in the current language, with ``fields`` filled in."""
    messages = MESSAGES[language or current_language()]
    template = messages.get(key) or MESSAGES[DEFAULT_LANGUAGE][key]
    return template.format(**fields) if fields else template


def duration(seconds: float, language: str | None = None) -> str:
    """A short human duration: ``"40 s"``, ``"3 min"``, ``"2 h 05"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return text("seconds", language, n=seconds)
    minutes = round(seconds / 60)
    if minutes < 60:
        return text("minutes", language, n=minutes)
    hours, minutes = divmod(minutes, 60)
    return text("hours", language, h=hours, m=minutes)
