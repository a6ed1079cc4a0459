"""Model server URLs: the one place they are checked, built and taken apart.

Pure string functions (no network): `normalize_url` checks what a user typed, `model_url` builds
TF Serving's REST paths, and `is_local_url` / `url_port` / `bind_host` tell whether a URL points at
this machine and which port and interface a local server must use for it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit

Version = int | str | None
EXAMPLE_URL = "http://127.0.0.1:8501"
LOCAL_HOSTS = ("localhost",)


def normalize_url(url: str) -> str:
    """``url`` with ``http://`` added when no scheme is given and no trailing ``/``.

    ``ValueError`` (with a readable message) unless it is an http(s) URL with a host, so a
    typo is reported where it is typed rather than as a failed connection later.
    """
    text = (url or "").strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a server URL: use the form http://host:port, "
                         f"e.g. {EXAMPLE_URL}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port: use a number from 1 to 65535") from None
    return text.rstrip("/")


def model_url(base_url: str, model: str, version: Version = None, label: str | None = None,
              verb: str | None = None, metadata: bool = False) -> str:
    """The one place model URLs are built: ``{base}/v1/models/{model}[/versions/{v}|/labels/{l}]``
    followed by ``/metadata`` or ``:{verb}``. Name and label are percent-encoded (TF Serving
    decodes them), so names with ``/`` or ``:`` still address the right model."""
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    url = f"{base_url.rstrip('/')}/v1/models/{quote(str(model), safe='')}"
    if version is not None:
        url += f"/versions/{int(version)}"
    elif label is not None:
        url += f"/labels/{quote(str(label), safe='')}"
    if metadata:
        url += "/metadata"
    if verb:
        url += f":{verb}"
    return url


def is_local_url(url: str) -> bool:
    """True when `url` points at this machine (`localhost` or a loopback address such as
    127.0.0.1 or ::1): only then can a server behind it be started or stopped from here."""
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_host(url: str) -> str:
    """The interface to bind so that `url` reaches the server (`localhost` -> 127.0.0.1)."""
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or "127.0.0.1"
    return "127.0.0.1" if host.lower() == "localhost" else host


def url_port(url: str) -> int:
    """The port of `url`: explicit, else 443 for https and 80 for http."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.port or (443 if parts.scheme == "https" else 80)
