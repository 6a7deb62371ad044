"""Jinja2 templates of the pages, autoescaped: every value is HTML-escaped unless it is
``Markup`` that charts.py built (and escaped inside) itself.

The environment is built on first use, not at import.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from mlkeel.dashboard import charts

# The pages run no script at all: a value that escaped escaping still could not execute.
# The page's <meta> copy (for the offline report) cannot carry frame-ancestors; the header does.
META_POLICY = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)
CONTENT_SECURITY_POLICY = META_POLICY + "; frame-ancestors 'none'"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("mlkeel.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=charts.number, percent=charts.percent, when=charts.when, short=_short,
        pretty=_pretty, pct=charts.percent,
    )  # fmt: skip
    env.globals["csp"] = META_POLICY
    return env


@functools.cache
def stylesheet() -> str:
    """The pages' CSS (``static/dashboard.css``)."""
    return (files("mlkeel.dashboard") / "static" / "dashboard.css").read_text(encoding="utf-8")


def render(template: str, **context: Any) -> str:
    """`template` filled with `context`; ``inline=True`` puts the CSS in the page."""
    context.setdefault("inline", False)
    if context["inline"]:
        context["stylesheet"] = stylesheet()
    return environment().get_template(template).render(**context)


def _short(value: object, length: int = 10) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[:length]


def _pretty(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str, ensure_ascii=False)
