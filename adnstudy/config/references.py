"""Checks that need the case and its feeder together: every bus a section names exists."""

from __future__ import annotations

from adnstudy.config.load import Case
from adnstudy.network.feeder import Feeder


def check_references(c: Case, feeder: Feeder) -> None:
    """Buses named by candidates and microgrids exist on the feeder; series named exist and fit.

    A candidate's ``profile`` must be a series of its technology's kind (pv or
    wind); without one it follows the case's first series of that kind. A
    microgrid's and a bus's ``load_profile`` must be a ``load`` series.
    """
    from adnstudy.errors import CaseError

    ids = set(int(b) for b in feeder.bus_ids)
    prof = c.config.profiles
    kind_of = {n: s.kind for n, s in prof.series.items()} if prof is not None else {}

    def fits(name: str, kind: str) -> str | None:
        if name not in kind_of:
            return f"profile '{name}' is not in profiles.series ({', '.join(kind_of)})"
        if kind_of[name] != kind:
            return f"profile '{name}' is a {kind_of[name]} series, not {kind}"
        return None

    if prof is not None:
        for bus, name in zip(feeder.buses["bus"], feeder.buses["load_profile"], strict=True):
            if name and (why := fits(name, "load")):
                raise CaseError(f"bus {bus}: {why}", file=feeder.bus_file, field="load_profile")
    if c.config.candidates is not None:
        for i, site in enumerate(c.config.candidates.sites):
            if site.bus not in ids:
                raise c.error(f"bus {site.bus} is not on feeder {feeder.name}", "candidates", "sites", i, "bus")
            if prof is None or site.tech == "storage":
                continue
            if site.profile is not None:
                if why := fits(site.profile, site.tech):
                    raise c.error(why, "candidates", "sites", i, "profile")
            elif site.tech not in kind_of.values():
                raise c.error(f"no {site.tech} series in profiles.series for this candidate", "candidates", "sites", i, "tech")
    for i, mg in enumerate(c.config.microgrids or []):
        if mg.bus not in ids:
            raise c.error(f"bus {mg.bus} is not on feeder {feeder.name}", "microgrids", i, "bus")
        if mg.bus == int(feeder.bus_ids[0]):
            raise c.error(f"bus {mg.bus} is the substation; a microgrid's PCC must be a feeder bus", "microgrids", i, "bus")
        if prof is not None and (why := fits(mg.load_profile, "load")):
            raise c.error(why, "microgrids", i, "load_profile")
        for tech in ("pv", "wind"):
            if prof is not None and getattr(mg, f"{tech}_mw") > 0 and tech not in kind_of.values():
                raise c.error(f"the microgrid has {tech}_mw but profiles.series has no {tech} series", "microgrids", i, f"{tech}_mw")


def case_feeder(case: Case) -> Feeder:
    """The case's feeder, loaded, checked, and cross-checked against the case's sections."""
    from adnstudy.network.feeder import load_feeder

    net = case.config.network
    for label in ("buses", "branches"):  # checked here too, for the line in the case file
        table = getattr(net, label)
        if table is not None and not case.resolve(table).is_file():
            raise case.error(f"feeder table not found: {case.resolve(table)}", "network", label)
    feeder = load_feeder(case.config.network, case.base_dir, case.path)
    check_references(case, feeder)
    return feeder
