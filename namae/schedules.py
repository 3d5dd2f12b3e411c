"""Schedule strings from configuration: `interval:6h`, `interval:30s`, `cron:0 4 * * *`, `off`."""

from __future__ import annotations

import re

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from catalog.errors import CatalogError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def parse_schedule(value: str, setting: str) -> BaseTrigger | None:
    """A trigger, or None for `off`. A string that does not parse is refused with its value and
    the setting it came from, before anything starts."""
    text = value.strip()
    if text.lower() in ("", "off", "never", "none"):
        return None
    kind, _, spec = text.partition(":")
    kind = kind.strip().lower()
    spec = spec.strip()
    try:
        if kind == "interval":
            match = _INTERVAL.match(spec.lower())
            if not match or float(match.group(1)) <= 0:
                raise ValueError("expected a positive number and one of s, m, h, d, w (e.g. 6h)")
            return IntervalTrigger(**{_UNITS[match.group(2)]: float(match.group(1))}, timezone="UTC")
        if kind == "cron":
            return CronTrigger.from_crontab(spec, timezone="UTC")
        raise ValueError("expected interval:<n><unit>, cron:<crontab> or off")
    except ValueError as exc:
        raise CatalogError(f"{setting} = {value!r} is not a schedule: {exc}") from None
