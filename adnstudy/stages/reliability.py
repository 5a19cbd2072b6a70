"""``adnstudy reliability``: IEEE 1366 indices by fault enumeration, for the network or a plan.

Without ``--plan`` the feeder is evaluated as it is (no DG), with each bus's
annual mean load (from the case's profiles; the peak load when the case has
none), into ``reliability/``. With ``--plan DIR`` the plan's built capacities
may supply islands, and loads and island credits come from the same typical
days the plan used, so the indices equal those the plan stage reports; they go
to ``reliability_plan/``, so ``adnstudy run`` (which evaluates the network
without DG) never overwrites them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adnstudy.config.load import Case
from adnstudy.problems.plan import plan_data, with_reliability
from adnstudy.reliability.data import reliability_data
from adnstudy.reliability.evaluate import evaluate, reliability_tables
from adnstudy.stages.registry import BY_NAME, Line, checked_inputs, read_inputs, stage_writer


def reliability_stage(case: Case, out_dir: Path, run_key: str | None = None, plan_dir: Path | None = None) -> dict[str, Any]:
    checked = checked_inputs(case, "reliability")
    cfg = case.config.reliability
    assert cfg is not None
    feeder = checked.feeder
    inputs: dict[str, str | None] = {}
    if plan_dir is not None:
        tables, inputs = read_inputs(case, out_dir, "reliability", {"plan_dir": plan_dir})
        investment = tables["plan", "investment"]
        typical, weights = tables["cluster", "typical"], tables["cluster", "weights"]
        data = with_reliability(case, plan_data(case, feeder, typical, weights))
        rd = data.reliability
        capacity = np.where(investment["build"].to_numpy(), investment["capacity_mw"].to_numpy(), 0.0)
        if len(capacity) != len(data.sites):
            raise case.error(
                f"the plan in {plan_dir} has {len(capacity)} candidate sites, this case {len(data.sites)}: "
                "re-run 'adnstudy plan' for this case", "candidates", "sites",
            )
    else:
        if case.config.profiles is not None:
            mean = checked.bus_load_multipliers.mean(axis=1)
        else:
            mean = np.ones(feeder.n_bus)
        load_avg = feeder.buses["p_mw"].to_numpy() * mean
        rd = reliability_data(case, feeder, load_avg, np.empty(0, dtype=int), np.empty(0))
        capacity = None
    assert rd is not None
    limits = {"SAIDI": cfg.saidi_limit_h, "EENS": cfg.eens_limit_mwh, "SAIFI": cfg.saifi_limit}
    with stage_writer(out_dir, case, "reliability", inputs=inputs, options={"plan_dir": plan_dir}) as w:
        with w.phase("evaluate"):
            res = evaluate(rd, capacity)
        for name, table in reliability_tables(rd, res, limits).items():
            w.table(name, table)
        summary = {**res.indices(), "plan": str(plan_dir) if plan_dir is not None else None}
        w.record(run_key=run_key, solver={"name": "fault_enumeration", "status": "evaluated",
                                          "faults": int(feeder.n_branch)},
                 objective=None, summary=summary)
    return summary


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy reliability`` prints."""
    s, plan_dir = summary, options.get("plan_dir")
    what = f"with the plan in {plan_dir}" if plan_dir is not None else "without DG"
    folder = BY_NAME["reliability"].folder_for(options)
    return [
        (f"{case.name} ({what}): SAIFI {s['SAIFI']:.4f} /yr, SAIDI {s['SAIDI']:.4f} h/yr, CAIDI {s['CAIDI']:.4f} h, "
         f"ASAI {s['ASAI']:.6f}, EENS {s['EENS']:.3f} MWh/yr", False),
        (f"results: {out_dir / folder}", False),
    ]
