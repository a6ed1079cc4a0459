"""Which logged requests: filters (model, API, transport, status, version, label, time window),
newest first. Shared by the CLI and the dashboard's Traffic page."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.traffic.logs import Logged

FAILED = "failed"
"""A status filter matching every request not answered OK."""
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Filter:
    """Every field set narrows the selection; None (or empty) lets everything through."""

    model: str | None = None
    api: str | None = None
    transport: str | None = None
    status: str | None = None
    """`OK`, `failed` (anything else), or a canonical code name."""
    version: int | None = None
    label: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keeps(self, entry: Logged) -> bool:
        if self.model and entry.model != self.model:
            return False
        if self.api and entry.api != self.api:
            return False
        if self.transport and (entry.transport or "").lower() != self.transport.lower():
            return False
        if self.status and not _status_matches(entry, self.status):
            return False
        if self.version is not None and entry.version != self.version:
            return False
        if self.label and entry.label != self.label:
            return False
        if self.since is not None and (entry.time is None or entry.time < self.since):
            return False
        return not (self.until is not None and (entry.time is None or entry.time > self.until))


def _status_matches(entry: Logged, wanted: str) -> bool:
    if wanted.lower() == FAILED:
        return not entry.ok
    if wanted.upper() == "OK":
        return entry.ok
    return (entry.status or "").upper() == wanted.upper()


def select(entries: Iterable[Logged], where: Filter = Filter(), limit: int | None = None) -> list[Logged]:
    """The entries `where` keeps, newest first (unknown times last), at most `limit`."""
    kept = [e for e in entries if where.keeps(e)]
    kept.sort(key=lambda e: (e.time is not None, e.time or datetime.min.replace(tzinfo=UTC), e.offset),
              reverse=True)
    return kept if limit is None else kept[: max(0, limit)]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A time a person types: `10m`, `2h`, `1d` (that long ago), or ISO 8601 (`2025-01-02T03:04`,
    UTC unless it says otherwise). ValueError naming the problem."""
    text = text.strip()
    now = now or datetime.now(UTC)
    if match := _AGO.match(text):
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 10m, 2h, 1d or 2025-01-02T03:04:05)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
