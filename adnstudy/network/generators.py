"""The user's table of existing generation (``network.generators``), read and checked into ``Feeder.generators``.

One row per existing unit (docs/case.md, "Generator table"): ``bus`` and ``p_mw``
(installed capacity) required; ``tech`` (``pv``, ``wind`` or ``other``; default
``other``), ``q_mvar`` (reactive output at full active output: the unit keeps
that power factor; default 0), ``name``, ``profile`` (its availability series,
per unit of ``p_mw``; empty: the case's first series of its technology's kind)
and ``curtailable`` (true/false; default false: must-take). Units are numbered
``gen`` 1, 2, ... in the table's order; messages name the file, line, column
and unit (``generators.csv:4: p_mw: gen 3: ...``), as the feeder tables' do,
with the plausible ranges of :data:`GENERATOR_RANGES`. Whether a ``profile`` is
a series of the right kind is checked against the case's profiles by
:func:`adnstudy.checks.check_references`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.config.schema import Range
from adnstudy.data import csvfile
from adnstudy.errors import CaseError
from adnstudy.network.feeder import GENERATOR_COLUMNS, Feeder, _Table

TECHS = ("pv", "wind", "other")
#: Plausible values of the numeric columns (docs/case.md states them; a test checks it).
GENERATOR_RANGES = {
    "bus": Range(1, 1e9),
    "p_mw": Range(0, 1000, "MW", lo_open=True),
    "q_mvar": Range(-1000, 1000, "Mvar"),
}


class _GeneratorTable(_Table):
    noun = "gen"
    ranges = GENERATOR_RANGES


def read_generators(path: Path, feeder: Feeder) -> pd.DataFrame:
    """The checked table of existing units at the feeder's buses (columns :data:`GENERATOR_COLUMNS`)."""
    why = csvfile.problem(path, "generator table")
    if why is not None:
        raise CaseError(why, field="network.generators")
    raw = csvfile.read_table(path, comment="#")
    return check_generators(raw, feeder, path)


def check_generators(raw: pd.DataFrame, feeder: Feeder, path: Path | str = "generators") -> pd.DataFrame:
    """Check a generator table (rows indexed by file line, as :func:`csvfile.read_table` gives) against the feeder."""
    t = _GeneratorTable(Path(path), raw)
    gen = pd.Series(np.arange(1, len(raw) + 1), index=raw.index)
    bus = t.numeric("bus", required=True)
    t.check((bus != np.round(bus)).to_numpy(), "bus", "bus ids must be integers", gen)
    t.within("bus", bus, gen)
    t.check(~bus.isin(feeder.bus_ids).to_numpy(), "bus", f"the bus is not on feeder {feeder.name}", gen)
    p = t.numeric("p_mw", required=True)
    t.within("p_mw", p, gen)
    q = t.numeric("q_mvar", required=False)
    t.within("q_mvar", q, gen)

    def text(col: str, default: str) -> pd.Series:
        return raw[col].fillna("").astype(str).str.strip() if col in raw.columns else pd.Series(default, index=raw.index)

    tech = text("tech", "other").str.lower().replace("", "other")
    t.check(~tech.isin(TECHS).to_numpy(), "tech", f"tech must be one of {', '.join(TECHS)}", gen)
    name = text("name", "")
    name = name.where(name != "", "gen " + gen.astype(str))
    out = pd.DataFrame({
        "gen": gen.to_numpy(), "name": name.to_numpy(), "bus": bus.astype(int).to_numpy(), "tech": tech.to_numpy(),
        "p_mw": p.to_numpy(), "q_mvar": q.fillna(0.0).to_numpy(), "profile": text("profile", "").to_numpy(),
        "curtailable": t.flags("curtailable"),
    })
    return out[list(GENERATOR_COLUMNS)]
