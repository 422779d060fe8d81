"""Jinja filters: numbers, money, times and durations as a person reads them."""

from __future__ import annotations

import datetime

# Shown for a value not known (yet): an en dash, as tables print it.
UNKNOWN = "\u2013"


def duration(seconds: float | None) -> str:
    """``75`` -> ``1m 15s``; ``None`` -> UNKNOWN."""
    if seconds is None:
        return UNKNOWN
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return UNKNOWN
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def usd(amount: float) -> str:
    """Cost: cents for ordinary sums, up to six decimals for the tiny ones
    batches of small requests add up to, so they never read as $0.00."""
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount < 0.000001:
        return "< $0.000001"
    return "$" + f"{amount:.6f}".rstrip("0")


def signed_usd(amount: float) -> str:
    """A margin: ``+$0.25``, ``-$0.50``; nothing either way is ``$0``."""
    if amount == 0:
        return usd(0)
    return ("+" if amount > 0 else "-") + usd(abs(amount))


def count(value: int) -> str:
    return f"{value:,}"


def rate(per_second: float | None) -> str:
    if per_second is None:
        return UNKNOWN
    if per_second >= 1:
        return f"{per_second:,.1f}/s"
    return f"{per_second * 60:,.1f}/min"


def percent(value: float | None) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:.1f} %" if value < 10 else f"{value:.0f} %"


FILTERS = {
    "duration": duration,
    "utc": utc,
    "usd": usd,
    "signed_usd": signed_usd,
    "count": count,
    "rate": rate,
    "percent": percent,
}
