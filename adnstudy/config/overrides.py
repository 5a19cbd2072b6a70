"""Changes of case fields made outside the case file: ``--set PATH=VALUE`` on the command line, or a sweep's variants.

An :class:`Override` sets one field of the merged case data (after the defaults
chain, before validation: ``config/load.py``), so a run with a field changed
needs no edited copy of the case. A path is written as in the case file
(``docs/case.md``): field names joined by ``.``, list items by ``[index]`` or
by ``[name]`` for lists of named items (``microgrids[north].bargaining_power``).

:func:`apply` checks only that the path can be walked; whether the field exists
and the value fits is the schema's to say, as for a field written in the file.
Errors name the override's ``source`` (``--set clustering.k=4``, or a line of a
sweep file) instead of a line of the case file.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from adnstudy.errors import CaseError

#: A resolved field path, as pydantic and ``config/load.py`` write it: names and list indices.
Loc = tuple[str | int, ...]

#: How the docs and messages show the syntax.
EXAMPLE = "e.g. clustering.k=6 or microgrids[north].bargaining_power=2"
#: How many item names a message lists before '...'.
NAMES_SHOWN = 8


@dataclass(frozen=True)
class Override:
    """One field set to a value: ``path`` as in the case file, ``value`` already parsed, ``source`` for messages."""

    path: str  # dotted names; list items by [index] or [name]
    value: Any  # a parsed YAML value: number, string, bool, None, list, mapping
    source: str  # how messages name it: "--set clustering.k=4", "sweep.yaml:12 (variant 'a'): clustering.k"

    def text(self) -> str:
        """``path=value``, the value as compact YAML flow that :func:`parse_set` reads back to the same value
        (what manifests record and re-run commands repeat)."""
        return f"{self.path}={flow(self.value)}"


@dataclass(frozen=True)
class _Item:
    """A ``[index]`` or ``[name]`` part of a path: an item of a list."""

    key: int | str


Part = str | _Item

#: One part of a path: ``.name`` (no dot at the start) or ``[key]``.
_PART = re.compile(r"(?P<dot>\.)?(?P<name>[^.\[\]\s=]+)|\[(?P<key>[^\[\]]*)\]")
_INDEX = re.compile(r"-?[0-9]+")


def parse_set(text: str) -> Override:
    """``"a.b[0].c=VALUE"`` as an :class:`Override`: split at the first ``=``, VALUE read as YAML (``4`` is a
    number, ``null`` None, ``[1, 2]`` a list, ``abc`` a string). Bad syntax is a :class:`CaseError` naming
    ``--set <text>``."""
    source = f"--set {text}"
    path, eq, raw = text.partition("=")
    if not eq:
        raise CaseError(f"no '=': write PATH=VALUE, {EXAMPLE}", file=source)
    path = path.strip()
    _parse_path(path, source)
    if not raw.strip():  # an unset shell variable, most likely; a file's 'k:' would be null
        raise CaseError("no value after '=' (write null for none, '' for an empty text)", file=source)
    return Override(path=path, value=_yaml_value(raw, source), source=source)


def _yaml_value(raw: str, source: str) -> Any:
    # load.py imports this module: its bounded YAML reader (depth, size, aliases) is imported when needed
    from adnstudy.config.load import yaml_value

    try:
        return yaml_value(raw)
    except ValueError as exc:
        raise CaseError(f"the value is {exc}", file=source) from None


def _parse_path(path: str, source: str) -> tuple[Part, ...]:
    """The parts of a field path, or a :class:`CaseError` saying where its syntax is wrong."""
    if not path:
        raise CaseError(f"empty field path: write PATH=VALUE, {EXAMPLE}", file=source)
    parts: list[Part] = []
    pos = 0
    while pos < len(path):
        match = _PART.match(path, pos)
        first = pos == 0
        if match is None or (match["name"] is not None and bool(match["dot"]) == first) or (
                first and match["key"] is not None):
            rest = path[pos:]
            why = ("brackets hold an index or a name: [0], [north]" if "[" in rest or "]" in rest
                   else "names are joined by '.'")
            raise CaseError(f"bad field path {path!r} at {rest!r}: {why} ({EXAMPLE})", file=source)
        if match["name"] is not None:
            parts.append(match["name"])
        else:
            key = match["key"].strip()
            if not key:
                raise CaseError(f"bad field path {path!r}: empty [] (give an index or a name: [0], [north])",
                                file=source)
            parts.append(_Item(int(key) if _INDEX.fullmatch(key) else key))
        pos = match.end()
    return tuple(parts)


def apply(data: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A deep copy of the case data with each override set, in order (module docstring)."""
    return apply_located(data, overrides)[0]


def apply_located(data: dict[str, Any], overrides: Sequence[Override]
                  ) -> tuple[dict[str, Any], list[tuple[Loc, Override]]]:
    """:func:`apply`, and for each override the field path it now provides, names resolved to indices: its own
    field, or the first mapping it had to create (everything below comes from the override)."""
    out = copy.deepcopy(data)
    located = [(_set(out, o), o) for o in overrides]
    return out, located


def _set(data: dict[str, Any], override: Override) -> Loc:
    """Set one override's field in ``data`` (in place); the path it now provides (:func:`apply_located`)."""
    parts = _parse_path(override.path, override.source)
    if parts[0] == "defaults":
        raise CaseError("'defaults' cannot be changed this way: the defaults files are read before fields are "
                        "set; name another defaults file in the case file", file=override.source, field="defaults")
    node: Any = data
    loc: list[str | int] = []
    owned: Loc | None = None  # the first mapping created on the way
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, _Item):
            index = _index(node, part, parts[:i], override)
            loc.append(index)
            if last:
                node[index] = copy.deepcopy(override.value)
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise _not_a_mapping(node, part, parts[:i], override)
        loc.append(part)
        if last:
            node[part] = copy.deepcopy(override.value)
            continue
        if node.get(part) is None and not isinstance(parts[i + 1], _Item):
            node[part] = {}  # a section the case does not have: validation says what else it needs
            owned = owned or tuple(loc)
        node = node.get(part)
    return owned or tuple(loc)


def _index(node: Any, part: _Item, before: tuple[Part, ...], override: Override) -> int:
    """The index in list ``node`` that ``[index]`` or ``[name]`` means, or a :class:`CaseError`."""
    where = _dotted(before)
    field = _dotted((*before, part))
    if not isinstance(node, list):
        has = f"is {_kind(node)}" if node is not None else "is not in the case"
        raise CaseError(f"{where} {has}, not a list: [{part.key}] picks a list item (a list is replaced whole: "
                        f"--set '{where}=[...]')", file=override.source, field=field)
    names = [item.get("name") if isinstance(item, dict) else None for item in node]
    if isinstance(part.key, int):
        if 0 <= part.key < len(node):
            return part.key
        hit: list[int] = []
    else:
        hit = [i for i, name in enumerate(names) if name == part.key]
        if len(hit) == 1:
            return hit[0]
    if len(hit) > 1:
        raise CaseError(f"{len(hit)} items of {where} are named {part.key!r} (indices {hit}): give an index",
                        file=override.source, field=field)
    raise CaseError(_choices(where, names), file=override.source, field=field)


def _choices(where: str, names: list[Any]) -> str:
    """What a list offers: 'the case has 3 microgrids (indices 0-2 or their names: north, east, ...)'."""
    if not names:
        return f"the case's {where} list is empty"
    indices = "index 0" if len(names) == 1 else f"indices 0-{len(names) - 1}"
    given = [str(n) for n in names if n is not None]
    if given:
        shown = ", ".join(given[:NAMES_SHOWN]) + (", ..." if len(given) > NAMES_SHOWN else "")
        indices += f" or {'its name' if len(given) == 1 else 'their names'}: {shown}"
    return f"the case has {len(names)} {where} ({indices})"


def _not_a_mapping(node: Any, name: str, before: tuple[Part, ...], override: Override) -> CaseError:
    where = _dotted(before)
    if isinstance(node, list):
        why = f"is a list of {len(node)}: pick an item first, {where}[0].{name} or {where}[<name>].{name}"
    else:
        why = f"is {_kind(node)}, not a section: it has no field '{name}'"
    return CaseError(f"{where} {why}", file=override.source, field=_dotted((*before, name)))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"the value {flow(value)}"


def _dotted(parts: tuple[Part, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part.key}]" if isinstance(part, _Item) else (f".{part}" if out else part)
    return out


def set_flags(overrides: Sequence[Override]) -> list[str]:
    """``--set <text>`` for each override, shell-quoted: what a suggested command adds to reproduce the case."""
    return [f"--set {shlex.quote(o.text())}" for o in overrides]


class _FlowDumper(yaml.SafeDumper):
    """YAML flow on one line: a string with a line break or another unprintable character double-quoted (escaped),
    a tuple as a list."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if not text.isprintable() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_FlowDumper.add_representer(str, _represent_str)
_FlowDumper.add_representer(tuple, yaml.SafeDumper.represent_list)


def flow(value: Any) -> str:
    """A value as one line of YAML flow that reads back to it (``4``, ``null``, ``'null'``, ``[1, 2]``, ``{k: 4}``)."""
    text = yaml.dump(value, Dumper=_FlowDumper, default_flow_style=True, width=float("inf"), sort_keys=False,
                     allow_unicode=True)
    return text.removesuffix("\n...\n").removesuffix("\n")
