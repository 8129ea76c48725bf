"""Where a plain form post goes back to: the page it came from, if it is this site's."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for


def same_site_referrer() -> str | None:
    """The Referer, if it is an absolute URL of this very site (as browsers send it).

    A relative or scheme-only one is refused: browsers read a backslash as a
    slash, so ``/\\evil.example`` or ``https:/\\evil.example`` would leave the site.
    """
    referrer = request.referrer
    if not referrer or "\\" in referrer:
        return None
    parts = urlsplit(referrer)
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        return referrer
    return None


def back_from_action(tache_id: int, *, deleted: bool) -> str:
    """After an action on one task: the referring page, unless it shows the deleted task."""
    page = url_for("taches.tache", tache_id=tache_id)
    referrer = same_site_referrer()
    if referrer and not (deleted and urlsplit(referrer).path == page):
        return referrer
    return url_for("taches.index") if deleted else page


def back_to_dashboard() -> str:
    """After an action on many tasks: the referring page, else the dashboard."""
    return same_site_referrer() or url_for("taches.index")
