"""Checks that need the case and its feeder together: every bus a section names exists."""

from __future__ import annotations

from adnstudy.config.load import Case
from adnstudy.network.feeder import Feeder


def check_references(c: Case, feeder: Feeder) -> None:
    """Buses named by candidates and microgrids exist on the feeder; profiles named exist."""
    ids = set(int(b) for b in feeder.bus_ids)
    series = set(c.config.profiles.series) if c.config.profiles is not None else set()
    if c.config.candidates is not None:
        for i, site in enumerate(c.config.candidates.sites):
            if site.bus not in ids:
                raise c.error(f"bus {site.bus} is not on feeder {feeder.name}", "candidates", "sites", i, "bus")
            if site.profile is not None and series and site.profile not in series:
                raise c.error(f"profile '{site.profile}' is not in profiles.series", "candidates", "sites", i, "profile")
    for i, mg in enumerate(c.config.microgrids or []):
        if mg.bus not in ids:
            raise c.error(f"bus {mg.bus} is not on feeder {feeder.name}", "microgrids", i, "bus")
        if mg.bus == int(feeder.bus_ids[0]):
            raise c.error(f"bus {mg.bus} is the substation; a microgrid's PCC must be a feeder bus", "microgrids", i, "bus")
        if series and mg.load_profile not in series:
            raise c.error(f"profile '{mg.load_profile}' is not in profiles.series", "microgrids", i, "load_profile")


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
