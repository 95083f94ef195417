"""MkDocs hook: renders the table of ``hourcast.settings.Settings`` into ``configuration.md`` at build time.

The page holds the marker ``<!-- settings-table -->``; the hook replaces it with one row per field (its
``HOURCAST_*`` variable, type, default and description), so the page cannot drift from the code.
``tests/unit/test_docs.py`` renders the table through the same function.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from mkdocs.exceptions import PluginError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from hourcast.settings import Settings

CONFIGURATION_PAGE = "configuration.md"
MARKER = "<!-- settings-table -->"

_BOUNDS = {  # constraint class: (symbol, the attribute holding its value)
    annotated_types.Ge: (">=", "ge"),
    annotated_types.Gt: (">", "gt"),
    annotated_types.Le: ("<=", "le"),
    annotated_types.Lt: ("<", "lt"),
}


def env_var(settings_class: type[BaseSettings], name: str) -> str:
    """The environment variable that sets field ``name`` (``HOURCAST_`` + the name in capitals)."""
    return f"{settings_class.model_config.get('env_prefix', '')}{name}".upper()


def _type_name(annotation: Any) -> str:
    """A reader's name for a field's type: ``int``, ``path``, ``sqlite or redis``, ``list of str``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " or ".join(str(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(annotation) if arg is not type(None))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])} (comma-separated)"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    """The field's numeric bounds and minimum length, e.g. ``>= 1, <= 64``."""
    parts = []
    for constraint in field.metadata:
        for kind, (symbol, attribute) in _BOUNDS.items():
            if isinstance(constraint, kind):
                parts.append(f"{symbol} {getattr(constraint, attribute)}")
        if isinstance(constraint, annotated_types.MinLen):
            length = constraint.min_length
            parts.append("not empty" if length == 1 else f"{length}+ characters")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    """The default as one would write it in the environment; ``unset`` for None."""
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"`{value}`"


def table_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def settings_table(settings_class: type[BaseSettings] = Settings) -> str:
    """The Markdown table of every field of ``settings_class``: variable, type, default, description."""
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, field in settings_class.model_fields.items():
        kind = _type_name(field.annotation)
        bounds = _bounds(field)
        if bounds:
            kind = f"{kind} ({bounds})"
        rows.append(
            f"| `{env_var(settings_class, name)}` | {table_cell(kind)} | {table_cell(_default(field))} "
            f"| {table_cell(field.description or '')} |"
        )
    return "\n".join(rows)


def render_configuration(markdown: str) -> str:
    """``markdown`` with its settings marker replaced by the table; fails unless the marker is there once."""
    if markdown.count(MARKER) != 1:
        raise PluginError(f"{CONFIGURATION_PAGE} must hold the marker {MARKER} exactly once")
    return markdown.replace(MARKER, settings_table())


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill in the configuration page's settings table."""
    if page.file.src_uri == CONFIGURATION_PAGE:
        return render_configuration(markdown)
    return markdown
