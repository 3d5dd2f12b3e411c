"""Schedule strings from configuration: `interval:6h`, `interval:30s`, `cron:0 4 * * *`, `off`.

The settings model validates them with `schedule_trigger` (so `namae config show` refuses what the
worker could not run); the worker turns them into APScheduler triggers with `parse_schedule`.
"""

from __future__ import annotations

import re

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from catalog.errors import CatalogError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
SCHEDULE_FORMS = "interval:<n><s|m|h|d|w> (e.g. interval:6h), cron:<crontab> (UTC) or off"


def schedule_trigger(value: str) -> BaseTrigger | None:
    """A trigger, or None for `off`; ValueError with the reason when `value` is not a schedule."""
    text = value.strip()
    if text.lower() in ("", "off", "never", "none"):
        return None
    kind, _, spec = text.partition(":")
    kind = kind.strip().lower()
    spec = spec.strip()
    if kind == "interval":
        match = _INTERVAL.match(spec.lower())
        if not match or float(match.group(1)) <= 0:
            raise ValueError("expected a positive number and one of s, m, h, d, w (e.g. interval:6h)")
        return IntervalTrigger(**{_UNITS[match.group(2)]: float(match.group(1))}, timezone="UTC")
    if kind == "cron":
        try:
            return CronTrigger.from_crontab(spec, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab: {exc}") from None
    raise ValueError(f"expected {SCHEDULE_FORMS}")


def parse_schedule(value: str, setting: str) -> BaseTrigger | None:
    """`schedule_trigger`, refusing a string that does not parse with its value and the setting
    it came from."""
    try:
        return schedule_trigger(value)
    except ValueError as exc:
        raise CatalogError(f"{setting} = {value!r} is not a schedule: {exc}") from None
