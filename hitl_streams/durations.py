"""Durations as the workflow side writes them (REF §6.5): `"7d"`, `"1.5h"`, `"500ms"`, seconds or a timedelta.

Strings are a number and a unit: `w`, `d`, `h`, `m`, `s` as in the reference, plus `ms` (server-side deadlines
of tens of milliseconds need it).

`parse_duration` returns seconds as a float. Unlike the reference (REF §10.1 #5), zero, negative, NaN and
infinite values are errors, never "no timeout": a caller who wants no timeout passes `None`.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from .errors import ValidationError

__all__ = ["MAX_DURATION_SECONDS", "Duration", "parse_duration"]

Duration = str | int | float | timedelta

# A century: far beyond any sensible wait, and small enough that `anchor + duration` never overflows `datetime`.
MAX_DURATION_SECONDS = 100 * 366 * 86_400.0

_PATTERN = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604_800.0, "d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_EXPECTED = '(expected e.g. "2w", "7d", "72h", "30m", "10s")'


def _shown(d: object) -> str:
    text = d if isinstance(d, str) else repr(d)
    return text if len(text) <= 64 else text[:61] + "..."


def parse_duration(d: Duration, *, what: str = "duration") -> float:
    """Seconds in `d`; `ValidationError` (naming `what`) for anything that is not a positive, finite duration."""
    if isinstance(d, bool):  # bool is an int subclass; `True` is a mistake, not one second
        raise ValidationError(f'Invalid {what}: "{_shown(d)}" {_EXPECTED}')
    if isinstance(d, str):
        match = _PATTERN.fullmatch(d)
        if match is None:
            raise ValidationError(f'Invalid {what}: "{_shown(d)}" {_EXPECTED}')
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    elif isinstance(d, int | float):
        seconds = float(max(-(2**63), min(d, 2**63))) if isinstance(d, int) else d  # no OverflowError
    elif isinstance(d, timedelta):
        seconds = d.total_seconds()
    else:
        raise ValidationError(f'Invalid {what}: "{_shown(d)}" {_EXPECTED}')
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValidationError(f'Invalid {what}: "{_shown(d)}" (must be a positive, finite duration)')
    if seconds > MAX_DURATION_SECONDS:
        raise ValidationError(f'Invalid {what}: "{_shown(d)}" (at most 100 years)')
    return seconds
