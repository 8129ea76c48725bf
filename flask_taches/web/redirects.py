"""Where a plain form post goes back to: the page it came from, if it is this site's."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for


def same_site(url: str | None, *, relative: bool = True) -> str | None:
    """``url`` if a browser sent to it stays on this very site; else ``None``.

    The one same-site check, for the Referer and for an application's
    ``?next=``: a path of this site (``/monitor``, when ``relative``), or an
    absolute ``http(s)`` URL of this host. Browsers read a backslash as a slash
    and drop tabs and newlines, so ``/\\evil.example`` or ``/<TAB>/evil.example``
    would leave the site as ``//evil.example``: any backslash, whitespace or
    control character is refused rather than guessed at.
    """
    if not url or "\\" in url or not url.isprintable() or " " in url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        return url
    is_path = not parts.scheme and not parts.netloc and url.startswith("/")
    if relative and is_path and not url.startswith("//"):
        return url
    return None


def same_site_referrer() -> str | None:
    """The Referer, if it is an absolute URL of this very site (as browsers send it).

    A relative or scheme-only one is refused: no browser sends one.
    """
    return same_site(request.referrer, relative=False)


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
