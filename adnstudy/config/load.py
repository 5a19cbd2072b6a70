"""Read a case file: YAML with line numbers, a defaults file merged underneath, overrides, typed validation.

Errors name the file, the dotted field path and, where the YAML shows it, the
line; a field set by an override (``--set``, ``config/overrides.py``) is named
by the override's source instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from adnstudy.config.overrides import Override, apply_located
from adnstudy.config.schema import CaseConfig
from adnstudy.data import userfile
from adnstudy.errors import CaseError

Loc = tuple[str | int, ...]
#: field path -> (file, line) where it is given; (an override's source, None) for a field an override sets
LineMap = dict[Loc, tuple[str, int | None]]


@dataclass(frozen=True)
class Case:
    """A validated case: its typed configuration plus where it came from."""

    config: CaseConfig
    path: Path
    file_sha256: str
    config_sha256: str
    #: the fields set on top of the files (``--set``), in the order applied
    overrides: tuple[Override, ...] = ()
    #: field path -> (file, line) for messages about values found after validation
    lines: LineMap = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.config.name or self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, p: Path) -> Path:
        """A path from the case, relative to the case file's folder."""
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def where(self, *loc: str | int) -> tuple[str, int | None]:
        """(file, line) of a field, for error messages raised after loading (an override's source, no line, for a
        field an override sets)."""
        return _where(tuple(loc), self.lines, self.path)

    def error(self, message: str, *loc: str | int) -> CaseError:
        """A :class:`CaseError` pointing at field ``loc`` of this case."""
        file, line = self.where(*loc)
        return CaseError(message, file=file, field=_dotted(loc) or None, line=line)

    def rule_error(self, message: str, *locs: Loc) -> CaseError:
        """An error about a rule between fields, pointing at the first of them that the case file itself gives
        (a value inherited from a defaults file is not the one to fix), as for the schema's own rules."""
        return self.error(message, *_first_given(locs, self.lines, self.path))


#: tags of the case schema's tagged unions (schema.Tariff), which pydantic puts in an error's loc
UNION_TAGS = ("hourly values", "series name")


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


#: bounds on the YAML of a case or defaults file (docs/case.md, "Limits on input files"): a shipped
#: case has ~350 nodes and is 5 levels deep; a file beyond these is refused before it is expanded
MAX_DEPTH = 32
MAX_NODES = 20_000
#: the tag PyYAML gives a ``<<`` merge key
MERGE_TAG = "tag:yaml.org,2002:merge"


class _TooLarge(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _CaseLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested deeper than MAX_DEPTH or of more than MAX_NODES nodes.

    Checked as each node is composed, so a hostile file stops early: long before the
    composer's recursion or the memory of a huge list is a problem.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH or self._nodes > MAX_NODES:
            line = self.peek_event().start_mark.line + 1
            if self._depth > MAX_DEPTH:
                raise _TooLarge(f"nested more than {MAX_DEPTH} levels deep; a case is a few levels of mappings and lists", line)
            raise _TooLarge(f"more than {MAX_NODES:,} values; a case is a few hundred (data belong in CSV files)", line)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse aliases whose expansion is too large, too deep, or endless (an alias inside its own anchor).

    Aliases (``*name``) share the anchored node, so the composed graph is small even
    when the document it stands for is huge (a "billion laughs" file): count the nodes
    and depth of that document on the graph, each node once, without expanding it.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        kids = _children(node)
        if done:
            size[nid] = min(1 + sum(size[id(k)] for k in kids), MAX_NODES + 1)
            height[nid] = 1 + max((height[id(k)] for k in kids), default=0)
            open_.discard(nid)
            if size[nid] > MAX_NODES:
                raise _TooLarge(f"the aliases (*name) expand to more than {MAX_NODES:,} values", node.start_mark.line + 1)
            if height[nid] > MAX_DEPTH:
                raise _TooLarge(f"the aliases (*name) expand to more than {MAX_DEPTH} levels", node.start_mark.line + 1)
            continue
        if nid in size:
            continue
        if nid in open_:
            raise _TooLarge("an alias (*name) refers to a mapping or list that contains it", node.start_mark.line + 1)
        open_.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)


#: What a YAML file of each kind holds, for the messages about one that holds something else.
SHAPES = {"a case file": "a case is a YAML mapping with at least 'network'",
          "a defaults file": "a case is a YAML mapping with at least 'network'",
          "a sweep file": "a sweep file is a YAML mapping with at least 'case' and 'stages' (docs/sweep.md)"}


def _read_yaml(path: Path, what: str = "a case file") -> tuple[dict[str, Any], dict[Loc, int], bytes]:
    """Parse a YAML mapping and record the line of every key (1-based); also the file's bytes.

    The file is parsed once: composed into nodes (bounded in depth and size), its
    aliases' expansion checked, its lines collected, then constructed from the nodes.
    """
    raw = userfile.read_bytes(path, limit=userfile.MAX_YAML_BYTES, what=what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError(f"cannot read file ({exc})", file=path) from None
    shape = SHAPES.get(what, SHAPES["a case file"])
    if not text.strip():
        raise CaseError(f"the file is empty; {shape}", file=path)
    loader = _CaseLoader(text)
    try:
        node = loader.get_single_node()
        if not isinstance(node, yaml.MappingNode):
            top = loader.construct_document(node) if isinstance(node, yaml.ScalarNode) else None
            if node is None or (isinstance(node, yaml.ScalarNode) and top is None):
                raise CaseError(f"the file has only comments; {shape}", file=path)
            kind = "list" if isinstance(node, yaml.SequenceNode) else type(top).__name__
            noun = "a sweep file" if what == "a sweep file" else "a case"
            raise CaseError(f"{noun} must be a YAML mapping of sections, not a {kind}", file=path, line=1)
        _check_expansion(node)
        lines: dict[Loc, int] = {}
        _collect_lines(node, (), lines, path)
        data = loader.construct_document(node)
    except _TooLarge as exc:
        raise CaseError(str(exc), file=path, line=exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CaseError(f"not valid YAML: {problem}", file=path, line=line) from None
    finally:
        loader.dispose()
    return data, lines, raw


def _collect_lines(node: yaml.Node | None, loc: Loc, out: dict[Loc, int], path: Path, merged: bool = False) -> None:
    """Record the line of each key and list item under ``loc``.

    A ``<<`` merge key's mappings give lines to the keys the mapping does not give
    itself; ``merged`` marks their content (no repeated-key check, explicit keys win).
    """
    if isinstance(node, yaml.MappingNode):
        merges: list[yaml.Node] = []
        for key, value in node.value:
            if key.tag == MERGE_TAG:
                merges.append(value)
                continue
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode):
                raise CaseError("a key must be a name, not a list or mapping", file=path, field=_dotted(loc) or None,
                                line=line)
            sub = (*loc, key.value)
            if merged:
                out.setdefault(sub, line)
            elif sub in out:  # YAML itself would keep the last one silently
                raise CaseError(f"repeated key (first given on line {out[sub]})", file=path, field=_dotted(sub), line=line)
            else:
                out[sub] = line
            _collect_lines(value, sub, out, path, merged)
        for value in merges:
            for m in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                _collect_lines(m, loc, out, path, merged=True)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*loc, i)
            if merged:
                out.setdefault(sub, item.start_mark.line + 1)
            else:
                out[sub] = item.start_mark.line + 1
            _collect_lines(item, sub, out, path, merged)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; lists and scalars in ``over`` replace those in ``base``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_case(path: str | Path, overrides: Sequence[Override] = ()) -> Case:
    """Load, merge with its chain of defaults files, set the overrides' fields, and validate a case file."""
    path = Path(path)
    data, case_lines, raw = _read_yaml(path)
    line_map: LineMap = {k: (str(path), v) for k, v in case_lines.items()}

    merged = data
    for dpath, ddata, dlines in _defaults_chain(path, data, case_lines):
        merged = _merge(ddata, merged)  # each file's values win over those of the file it names
        for k, v in dlines.items():
            line_map.setdefault(k, (str(dpath), v))
    merged["defaults"] = data.get("defaults")  # the case's own, not one a defaults file names
    overrides = tuple(overrides)
    merged = _override(merged, overrides, line_map)

    try:
        config = CaseConfig.model_validate(merged)
    except ValidationError as exc:
        raise _case_error(exc, path, line_map) from None

    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return Case(
        config=config,
        path=path.resolve(),
        file_sha256=hashlib.sha256(raw).hexdigest(),
        config_sha256=hashlib.sha256(canonical).hexdigest(),
        overrides=overrides,
        lines=line_map,
    )


def _override(data: dict[str, Any], overrides: tuple[Override, ...], line_map: LineMap) -> dict[str, Any]:
    """The merged data with the overrides set; each field an override provides is named in ``line_map`` by its
    source, and nothing below it by a file (the override replaced it)."""
    data, located = apply_located(data, overrides)
    for loc, override in located:
        for key in [k for k in line_map if k[: len(loc)] == loc]:
            del line_map[key]
        line_map[loc] = (override.source, None)
    return data


def yaml_value(text: str) -> Any:
    """One YAML value given outside a file (``--set PATH=VALUE``), bounded as a case file is (depth, size,
    aliases); ``ValueError`` says what is wrong."""
    loader = _CaseLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _TooLarge as exc:
        raise ValueError(str(exc)) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def packaged_defaults() -> dict[str, Path]:
    """The defaults files shipped inside the package (``adnstudy/data/configs/``), by file name."""
    folder = Path(str(resources.files("adnstudy") / "data" / "configs"))
    return {p.name: p for p in sorted(folder.glob("*.yaml"))}


def resolve_defaults(named: str, by: Path) -> Path | None:
    """The file that ``defaults: <named>`` in file ``by`` means, or None if there is none.

    A path is relative to the folder of the file that names it. A bare file name
    that is not there is the packaged defaults file of that name, if there is one.
    """
    candidate = Path(named).expanduser()
    if not candidate.is_absolute():
        candidate = by.parent / candidate
    if candidate.exists():  # a directory or device too: reading it says what it is
        return candidate.resolve()
    if Path(named).name == named:
        return packaged_defaults().get(named)
    return None


def _defaults_chain(path: Path, data: dict[str, Any], lines: dict[Loc, int]
                    ) -> list[tuple[Path, dict[str, Any], dict[Loc, int]]]:
    """The defaults files below a case, nearest first, each read: (path, data, lines of keys).

    Each names the next with its own ``defaults``; a file named a second time is a cycle.
    """
    chain: list[tuple[Path, dict[str, Any], dict[Loc, int]]] = []
    seen = [path.resolve()]
    by, named = path, data.get("defaults")
    while named is not None:
        line = lines.get(("defaults",))
        if not isinstance(named, str):
            raise CaseError("must be the path of a YAML defaults file", file=by, field="defaults", line=line)
        dpath = resolve_defaults(named, by)
        if dpath is None:
            looked = (by.parent / Path(named).expanduser()).resolve()
            packaged = (f" or a packaged defaults file ({', '.join(packaged_defaults())})"
                        if Path(named).name == named else "")
            raise CaseError(f"defaults file '{named}' not found (looked for {looked}{packaged})",
                            file=by, field="defaults", line=line)
        if dpath in seen:
            loop = [*seen[seen.index(dpath):], dpath]
            unique = len({p.name for p in loop}) == len(loop) - 1
            cycle = " -> ".join(p.name if unique else str(p) for p in loop)
            raise CaseError(f"the defaults files name each other in a cycle: {cycle}",
                            file=by, field="defaults", line=line)
        seen.append(dpath)
        why = userfile.problem(dpath, userfile.MAX_YAML_BYTES, "a defaults file")
        if why is not None:  # a device, FIFO, directory or huge file: said at the line that names it
            raise CaseError(f"defaults file {dpath}: {why}", file=by, field="defaults", line=line)
        ddata, dlines, _ = _read_yaml(dpath, "a defaults file")
        chain.append((dpath, ddata, dlines))
        by, named, lines = dpath, ddata.get("defaults"), dlines
    return chain


def _case_error(exc: ValidationError, path: Path, line_map: LineMap) -> CaseError:
    """The first validation error as one message; the count of others is appended.

    An unknown field comes first: a misspelt required field is also reported as
    missing, and the misspelling is the one that says what to fix. A rule between
    fields (``cross_field_error``) is reported at the line of the field the case
    file gives (or at the override that sets one); a bad mapping key (a series
    name) at the key's line. An error in or above a field an override sets names
    the override.
    """
    errors = exc.errors(include_url=False)
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # pydantic appends the model-validator mode or a union member to loc; drop non-field parts
    loc: Loc = tuple(p for p in first["loc"]
                     if not (isinstance(p, str) and (p.startswith("function-") or p in UNION_TAGS)))
    kind = first["type"]
    msg = first["msg"]
    key = None
    if loc and loc[-1] == "[key]":  # the key of a mapping is wrong, not its value
        loc, key = loc[:-1], loc[-2]
    if kind == "cross_field":
        loc = _given_field(loc, first["ctx"]["fields"], line_map, path)
    file, line = _where(loc, line_map, path)
    if kind == "extra_forbidden":
        msg = "unknown field (check the spelling; see docs/case.md for the fields of this section)"
    elif kind == "missing":
        msg = "required field is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif kind == "list_type" and first["loc"][-1] == "hourly values":  # neither a list nor a name (schema.Tariff)
        msg = "a tariff is 24 hourly values (USD/MWh) or the name of a price series of the profiles"
    if key is not None:
        loc, msg = loc[:-1], f"key {key!r}: {msg}"
    elif kind not in ("missing", "extra_forbidden") and "input" in first:
        shown = first["input"]
        if not isinstance(shown, dict | list):
            msg += f" (got {shown!r})"
    if len(errors) > 1:
        msg += f" [and {len(errors) - 1} more problem(s)]"
    return CaseError(msg, file=file, field=_dotted(loc) or None, line=line)


def _given_field(section: Loc, fields: tuple[str | Loc, ...], line_map: LineMap, path: Path) -> Loc:
    """Of the fields a rule names (names, or paths below the section), the path of the first an override sets,
    else of the first the case file gives, else of the first any file gives."""
    return _first_given(tuple((*section, *(f if isinstance(f, tuple) else (f,))) for f in fields), line_map, path)


def _first_given(locs: tuple[Loc, ...], line_map: LineMap, path: Path) -> Loc:
    """Of these field paths, the first an override sets (what this run changed), else the first the case file at
    ``path`` gives, else the first any file gives."""
    overridden = [loc for loc in locs if _set_by(loc, line_map) is not None]
    given = [loc for loc in locs if loc in line_map]
    in_case = [loc for loc in given if line_map[loc][1] is not None
               and Path(line_map[loc][0]).resolve() == path.resolve()]
    return (overridden or in_case or given or list(locs))[0]


def _set_by(loc: Loc, line_map: LineMap) -> str | None:
    """The source of the override that sets field ``loc`` (it, or a section or list item above it), if any."""
    for n in range(len(loc), 0, -1):
        hit = line_map.get(loc[:n])
        if hit is not None:
            return hit[0] if hit[1] is None else None
    return None


def _where(loc: Loc, line_map: LineMap, path: Path) -> tuple[str, int | None]:
    """(file, line) of field ``loc``: where it, or the nearest section or item above it, is given; but the source
    of the latest override that sets a field below it, where no override sets it; else the case file."""
    given = next((line_map[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in line_map), None)
    if given is not None and given[1] is None:  # set by an override
        return given
    below = [src for k, (src, line) in line_map.items() if line is None and loc and k[: len(loc)] == loc]
    if below:
        return below[-1], None
    return given or (str(path), None)
