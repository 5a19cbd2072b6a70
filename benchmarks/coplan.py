"""Co-planning benchmark: the whole ``coplan`` stage on the shipped feeders with 3, 6 and 10 microgrids.

Each variant is a case file written to a temporary folder and run through the
command line a user runs (``adnstudy cluster`` then ``adnstudy coplan``). The
3-MG variant of each feeder is the shipped case; the 6- and 10-MG variants
cycle the shipped case's three MGs (with their candidates) over further PCC
buses (the buses of ``benchmarks/dispatch.py``), named mg1..mgN. Reported per
row, from the stage's manifest: outcome and outer iterations, upper-level
ATC + ADMM iterations per outer iteration, seconds per phase (centralised
reference, disagreement point, alternating loop, stability check) and in all,
the welfare of the alternating result and of the centralised plan and their
relative gap, the total gain, and the stability check (with the moves to a
profitable deviation the lower levels had missed).

    .venv/bin/python benchmarks/coplan.py [--mgs 3 6 10] [--feeders ieee33 ieee69] [--k 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from dispatch import MG_BUSES  # noqa: E402


def variant(feeder: str, n_mgs: int, k: int, folder: Path) -> Path:
    """The shipped case of ``feeder`` with ``n_mgs`` MGs and K = ``k``, written into ``folder``."""
    src = ROOT / "cases" / f"{feeder}.yaml"
    cfg = yaml.safe_load(src.read_text())
    cfg["defaults"] = str((src.parent / cfg["defaults"]).resolve())
    templates = cfg["microgrids"]
    mgs = []
    for i in range(n_mgs):
        mg = dict(templates[i % len(templates)])
        mg["name"], mg["bus"] = f"mg{i + 1}", MG_BUSES[feeder][i]
        mgs.append(mg)
    cfg["microgrids"] = mgs
    cfg.setdefault("clustering", {})["k"] = k
    cfg["name"] = f"{feeder}_{n_mgs}mg"
    path = folder / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(case: Path, out: Path) -> dict:
    for stage in ("cluster", "coplan"):
        res = subprocess.run([sys.executable, "-m", "adnstudy", stage, str(case), "--out", str(out)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            return {"status": f"{stage} exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}"}
    manifest = json.loads((out / "coplan" / "manifest.json").read_text())
    return {"status": "ok", **manifest["summary"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mgs", type=int, nargs="+", default=[3, 6, 10])
    ap.add_argument("--feeders", nargs="+", default=["ieee33", "ieee69"])
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    print(f"{'feeder':8} {'MGs':>3} {'outcome':12} {'outer':>5} {'moves':>5} {'upper its':>16} {'central s':>9} {'alone s':>8} "
          f"{'altern s':>8} {'stab s':>7} {'total s':>8} {'welfare gap':>11} {'gain USD/yr':>12} stable")
    for feeder in args.feeders:
        for n in args.mgs:
            with tempfile.TemporaryDirectory() as tmp:
                case = variant(feeder, n, args.k, Path(tmp))
                t = time.perf_counter()
                r = run(case, Path(tmp) / "out")
                r.update(feeder=feeder, mgs=n, k=args.k, wall_s=time.perf_counter() - t)
            rows.append(r)
            if r["status"] != "ok":
                print(f"{feeder:8} {n:>3} {r['status']}")
                continue
            s = r["seconds"]
            print(f"{feeder:8} {n:>3} {r['outcome']:12} {r['outer_iterations']:>5} {r['deviation_moves']:>5} "
                  f"{','.join(map(str, r['upper_iterations'])):>16} {s['centralised']:>9.1f} {s['disagreement']:>8.1f} "
                  f"{s['alternating']:>8.1f} {s['stability']:>7.1f} {r['wall_s']:>8.1f} {r['welfare_gap']:>11.1e} "
                  f"{r['total_gain_usd']:>12,.0f} {r['stable']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
