"""Scale benchmark: peak memory and time against feeder size, per phase, for ``powerflow --year`` and ``plan``.

For each N (buses) a synthetic feeder (``benchmarks/synthetic.py``: copies of
the IEEE 33-bus feeder, K typical days) is written and clustered, then each
command runs in a fresh child process (so peak RSS is its own):

* ``powerflow-year``: ``adnstudy powerflow CASE --year``;
* ``plan-norel``: ``adnstudy plan CASE --no-reliability``;
* ``plan``: ``adnstudy plan CASE`` (with the reliability section).

The child samples its resident set size every 10 ms and labels the samples by
what is running (the stage's phases, the model builds, CVXPY's compilation,
Clarabel's solves, ...): per label, the inclusive seconds and the peak RSS
reached while it ran. Clarabel's memory is Rust's, invisible to tracemalloc,
hence RSS. Also reported: the model's size as CVXPY hands it to Clarabel
(variables, constraint rows, nonzeros of A) and the estimate of
:mod:`adnstudy.solve.size`.

    .venv/bin/python benchmarks/scale.py --buses 33 100 200 500 --what powerflow-year plan-norel plan \\
        [--k 8] [--time-limit 600] [--timeout 1200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
COMMANDS = {
    "powerflow-year": ["powerflow", "--year"],
    "plan-norel": ["plan", "--no-reliability"],
    "plan": ["plan"],
}
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Probe:
    """Samples RSS in a thread; labels (nested, possibly in several threads) collect time and peak RSS."""

    def __init__(self, interval: float = 0.01) -> None:
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.model_sizes: list[dict[str, int]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.interval = interval
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        rss = rss_bytes()
        with self.lock:
            for label, n in self.active.items():
                if n > 0:
                    self.peak[label] = max(self.peak.get(label, 0), rss)

    @contextmanager
    def label(self, name: str):
        with self.lock:
            self.active[name] = self.active.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
        self.sample()
        t = time.perf_counter()
        try:
            yield
        finally:
            self.sample()
            with self.lock:
                self.active[name] -= 1
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:  # not in this version of the code
            return
        probe = self

        def wrapped(*a, **kw):
            with probe.label(name):
                return fn(*a, **kw)

        setattr(owner, attr, wrapped)


def child(argv: list[str], report: Path) -> None:
    """Run one adnstudy command in this process under the probe; write the probe's figures to ``report``."""
    import cvxpy as cp
    from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

    import adnstudy.network.powerflow as pf_mod
    import adnstudy.problems.plan as plan_mod
    import adnstudy.solve.mip as mip_mod
    import adnstudy.stages.plan as plan_stage_mod
    import adnstudy.stages.powerflow as pf_stage_mod
    from adnstudy.results import store

    probe = Probe()
    base = rss_bytes()
    phase = store.StageWriter.phase

    @contextmanager
    def phase_probe(self, name):
        with probe.label(f"phase:{name}"), phase(self, name):
            yield

    store.StageWriter.phase = phase_probe
    probe.wrap(plan_stage_mod, "load_plan_inputs", "plan inputs (+ MG exchanges)")
    probe.wrap(plan_stage_mod, "solve_plan", "solve_plan (build + B&B + final)")
    probe.wrap(plan_stage_mod, "no_investment_baseline", "baseline")
    probe.wrap(plan_stage_mod, "evaluate", "reliability evaluate")
    probe.wrap(plan_stage_mod, "verify_against_ac", "AC verify")
    probe.wrap(plan_mod, "build_plan_model", "build_plan_model")
    probe.wrap(plan_mod, "reliability_block", "reliability_block")
    probe.wrap(mip_mod, "branch_and_bound", "branch_and_bound")
    probe.wrap(mip_mod, "final_point", "final_point")
    probe.wrap(pf_mod, "run_powerflow", "run_powerflow")
    probe.wrap(pf_stage_mod, "run_powerflow", "run_powerflow")
    probe.wrap(pf_stage_mod, "result_tables", "result_tables")
    probe.wrap(cp.Problem, "get_problem_data", "cvxpy compile")
    probe.wrap(CLARABEL, "solve_via_data", "clarabel")
    seen: set[int] = set()
    get_data = cp.Problem.get_problem_data

    def sizes(self, *a, **kw):  # the size of each distinct model handed to Clarabel
        out = get_data(self, *a, **kw)
        data = out[0]
        if id(self) not in seen and "A" in data:
            seen.add(id(self))
            probe.model_sizes.append({"variables": int(data["c"].size), "rows": int(data["A"].shape[0]),
                                      "nnz": int(data["A"].nnz)})
        return out

    cp.Problem.get_problem_data = sizes
    from adnstudy.cli import main

    sys.argv = ["adnstudy", *argv]
    t = time.perf_counter()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    wall = time.perf_counter() - t
    probe.stop.set()
    report.write_text(json.dumps({
        "exit": code, "seconds": wall, "base_rss_mb": base / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "labels": {k: {"seconds": probe.seconds[k], "calls": probe.calls[k],
                       "peak_rss_mb": probe.peak.get(k, 0) / 2**20} for k in probe.seconds},
        "models": probe.model_sizes,
    }, indent=1))


def run(n_bus: int, what: str, work: Path, k: int, time_limit: float, timeout: float, code: Path = ROOT) -> dict:
    from synthetic import write_case

    folder = work / f"n{n_bus}"
    case = folder / "case.yaml"
    if not case.exists():
        write_case(folder, n_bus, k=k)
    out = folder / "results"
    env = {**os.environ, "PYTHONPATH": str(code)}
    if not (out / "cluster").exists():
        subprocess.run([sys.executable, "-m", "adnstudy", "cluster", str(case), "--out", str(out)], check=True,
                       env=env, capture_output=True)
    argv = [*COMMANDS[what][:1], str(case), "--out", str(out), *COMMANDS[what][1:]]
    if what.startswith("plan"):
        argv += ["--time-limit", str(time_limit)]
    report = folder / f"{what}-{os.getpid()}.json"
    report.unlink(missing_ok=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(report), "--", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if not report.exists():
        return {"n_bus": n_bus, "what": what, "exit": proc.returncode, "seconds": time.perf_counter() - t,
                "error": proc.stderr[-2000:]}
    res = json.loads(report.read_text())
    res.update(n_bus=n_bus, what=what, stderr=proc.stderr[-1000:] if res["exit"] else "")
    return res


def main() -> None:
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[sys.argv.index("--") + 1:], Path(sys.argv[i + 1]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buses", type=int, nargs="+", default=[33, 100, 200, 500])
    ap.add_argument("--what", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=600.0, help="plan --time-limit, seconds")
    ap.add_argument("--timeout", type=float, default=1800.0, help="kill a run after this many seconds")
    ap.add_argument("--work", type=Path, default=Path("/tmp/adnstudy-scale"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--code", type=Path, default=ROOT, help="the adnstudy source tree to measure (default: this one)")
    args = ap.parse_args()
    rows = []
    for n in args.buses:
        for what in args.what:
            try:
                res = run(n, what, args.work, args.k, args.time_limit, args.timeout, args.code)
            except subprocess.TimeoutExpired:
                res = {"n_bus": n, "what": what, "exit": "timeout", "seconds": args.timeout}
            rows.append(res)
            models = res.get("models") or [{}]
            big = max(models, key=lambda m: m.get("nnz", 0))
            print(f"{what:>15} N={n:>5} exit={res['exit']} {res['seconds']:8.1f} s  peak "
                  f"{res.get('peak_rss_mb', float('nan')):8.0f} MB  model vars={big.get('variables', '-')} "
                  f"rows={big.get('rows', '-')} nnz={big.get('nnz', '-')}", flush=True)
            for label, v in sorted(res.get("labels", {}).items(), key=lambda kv: -kv[1]["peak_rss_mb"]):
                print(f"{'':>20}{label:<36} {v['seconds']:8.2f} s {v['calls']:>4}x  peak {v['peak_rss_mb']:8.0f} MB")
            if res.get("error") or res.get("stderr"):
                print((res.get("error") or res.get("stderr"))[-600:])
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
