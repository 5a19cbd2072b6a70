"""Network figures of the plan report: the feeder layout, the per-lateral voltage envelopes, what the map draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adnstudy.config.schema import NetworkConfig
from adnstudy.network.feeder import Feeder, load_feeder
from adnstudy.report.network_figures import (
    TIE_LABEL,
    feeder_map,
    lateral_envelopes,
    layout,
    voltage_by_lateral,
)
from adnstudy.report.style import png_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ieee33() -> Feeder:
    return load_feeder(NetworkConfig(feeder="ieee33"), ROOT, "t")


@pytest.fixture(scope="module")
def ieee69() -> Feeder:
    return load_feeder(NetworkConfig(feeder="ieee69"), ROOT, "t")


def check_tidy(fd: Feeder) -> None:
    """Every bus on one row, one row per leaf, paths joined by branches, no two buses in one place,
    and no lateral's drop crossing a row it passes (those rows lie wholly to its right)."""
    lay = layout(fd)
    edges = set(zip(fd.branches["from_bus"], fd.branches["to_bus"], strict=True))
    leaves = set(fd.bus_ids) - set(fd.branches["from_bus"])
    assert len(lay.laterals) == len(lay.rows) == len(lay.names) == len(leaves)
    assert sorted(b for row in lay.rows for b in row) == sorted(fd.bus_ids.tolist())
    assert {p[-1] for p in lay.laterals} == leaves
    assert len(set(lay.position.values())) == fd.n_bus
    for path, row in zip(lay.laterals, lay.rows, strict=True):
        assert path[0] == fd.bus_ids[0] and path[-len(row):] == row
        assert all((u, v) in edges for u, v in zip(path, path[1:], strict=False))
        assert [lay.position[b][0] for b in path] == list(range(len(path)))  # x = branches from the substation
    for r, row in enumerate(lay.rows[1:], start=1):
        xp, rp = lay.position[lay.parent[row[0]]]
        assert rp < r
        assert all(min(lay.position[b][0] for b in lay.rows[k]) > xp for k in range(rp + 1, r))


def test_ieee33_layout_is_the_textbook_picture(ieee33):
    lay = layout(ieee33)
    assert lay.laterals[0] == list(range(1, 19))
    assert [lay.position[b] for b in range(1, 19)] == [(x, 0) for x in range(18)]
    expected = {(1, 2, *range(19, 23)), (1, 2, 3, *range(23, 26)), (*range(1, 7), *range(26, 34))}
    assert {tuple(p) for p in lay.laterals[1:]} == expected
    assert "lateral 2 → 19–22" in lay.names and lay.names[0] == "main feeder 1–18"
    check_tidy(ieee33)


def test_ieee69_layout(ieee69):
    lay = layout(ieee69)
    assert lay.laterals[0] == list(range(1, 28))
    assert len(lay.laterals) == 8
    check_tidy(ieee69)


def synthetic_bus_table(fd: Feeder, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product([range(3), range(4), fd.bus_ids], names=["scenario", "hour", "bus"])
    return idx.to_frame(index=False).assign(v_pu=rng.uniform(0.93, 1.05, len(idx)))


def test_lateral_envelopes_match_pandas(ieee33):
    lay = layout(ieee33)
    table = synthetic_bus_table(ieee33)
    env = lateral_envelopes(lay, table)
    assert list(env.columns) == ["lateral", "position", "bus", "v_min_pu", "v_mean_pu", "v_max_pu"]
    assert len(env) == sum(len(p) for p in lay.laterals)
    for name, path in zip(lay.names, lay.laterals, strict=True):
        got = env[env["lateral"] == name]
        assert got["bus"].tolist() == path and got["position"].tolist() == list(range(len(path)))
        for bus, row in zip(path, got.itertuples(), strict=True):
            v = table.loc[table["bus"] == bus, "v_pu"]
            assert (row.v_min_pu, row.v_max_pu) == (v.min(), v.max())
            assert row.v_mean_pu == pytest.approx(v.mean(), rel=1e-12)


def drawn(fig, gid: str) -> int:
    return sum(1 for ax in fig.axes for line in ax.lines if line.get_gid() == gid)


def test_feeder_map_draws_ties_sites_and_microgrids(ieee33, ieee69):
    lay = layout(ieee33)
    pairs = pd.MultiIndex.from_frame(ieee33.branches[["from_bus", "to_bus"]])
    loading = pd.Series(np.linspace(5, 95, len(pairs)), index=pairs)
    loading.iloc[3] = np.nan  # an unrated branch: grey
    sites = pd.DataFrame({"bus": [10, 17, 32, 32], "tech": ["wind", "wind", "pv", "storage"],
                          "capacity_mw": [0.91, 0.68, 1.0, 0.3]})
    mgs = pd.DataFrame({"name": ["mg1", "mg2", "mg3"], "bus": [18, 25, 33]})
    v = pd.Series(np.linspace(1.0, 0.95, ieee33.n_bus), index=ieee33.bus_ids)
    fig = feeder_map(ieee33, lay, v, loading, sites, mgs, title="t")
    assert (drawn(fig, "tie"), drawn(fig, "site"), drawn(fig, "microgrid")) == (5, 4, 3)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {TIE_LABEL, "substation", "unrated branch", "PV built (MW)", "storage built (MW)",
            "microgrid at its PCC"} <= set(labels)
    bar_labels = {ax.get_xlabel() for ax in fig.axes}
    assert {"lowest voltage over the plan's hours (pu)", "highest loading over the plan's hours (%)"} <= bar_labels
    # a feeder without ties, sites or MGs
    bare = feeder_map(ieee69, layout(ieee69), pd.Series(1.0, index=ieee69.bus_ids), pd.Series(dtype=float))
    assert (drawn(bare, "tie"), drawn(bare, "site"), drawn(bare, "microgrid")) == (0, 0, 0)
    assert png_bytes(bare)[:4] == b"\x89PNG"


def test_voltage_by_lateral_panels(ieee69):
    lay = layout(ieee69)
    fig = voltage_by_lateral(lay, synthetic_bus_table(ieee69), v_min=0.95, v_max=1.05, title="t")
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == lay.names
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "limits" in labels and any(label.startswith("worst snapshot (scenario ") for label in labels)
