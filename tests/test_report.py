"""``adnstudy report``: on the demo's results (the README tour), on a folder with only some stages, and on folders
that are not results folders; its tables against the Parquet tables they come from, computed here another way;
its HTML page loaded in a real headless browser.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, Study, Tour
from PIL import Image
from typer.testing import CliRunner

from adnstudy.cli import app

runner = CliRunner()


def report(folder: Path):
    return runner.invoke(app, ["report", str(folder)])


@pytest.fixture(scope="module")
def demo(readme_tour: Tour) -> Path:
    """The tour's results folder, with the report the tour's ``adnstudy report`` line wrote."""
    lines = [line for line, args, _ in readme_tour.results if args[0] == "report"]
    assert lines, "the README's quick tour has no 'adnstudy report' line"
    folder = readme_tour.results_dir
    assert (folder / "report" / "report.html").is_file()
    return folder


def csv(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / "report" / f"{name}.csv")


# ------------------------------------------------------------------ the demo's report
def test_demo_report_has_a_section_per_stage(demo: Path) -> None:
    md = (demo / "report" / "report.md").read_text()
    heads = re.findall(r"^## (.+)$", md, flags=re.M)
    assert [h.split(":")[0] for h in heads] == ["Case", "Base-case power flow", "Typical days", "Plan", "Dispatch",
                                                "Co-planning"]
    assert "Not run" not in md
    stages = csv(demo, "stages")
    for stage in ("powerflow", "powerflow_year", "cluster", "reliability", "reliability_plan", "plan", "dispatch",
                  "coplan"):
        manifest = json.loads((demo / stage / "manifest.json").read_text())
        row = stages[stages["stage"] == stage].iloc[0]
        assert row["created_utc"] == manifest["created_utc"]
        assert manifest["run_key"].startswith(row["run_key"])
    # every figure the Markdown links is written beside it
    for png in re.findall(r"\]\((\w+\.png)\)", md):
        assert (demo / "report" / png).is_file(), png


def test_demo_report_numbers_are_the_tables(demo: Path) -> None:
    """Each report table against its source, recomputed here by another route (cluster weights, not the
    dispatch manifest's; pandas pivots, not the report's loops)."""
    cost = pd.read_parquet(demo / "plan" / "cost.parquet")
    pd.testing.assert_frame_equal(csv(demo, "plan_cost"), cost, check_dtype=False, rtol=1e-12)

    inv = pd.read_parquet(demo / "plan" / "investment.parquet")
    sites = csv(demo, "plan_sites")
    assert sites["bus"].tolist() == inv.loc[inv["build"], "bus"].tolist()
    np.testing.assert_allclose(sites["capacity_mw"], inv.loc[inv["build"], "capacity_mw"], rtol=1e-12)

    rel = csv(demo, "reliability").set_index("index")
    before = pd.read_parquet(demo / "reliability" / "reliability.parquet").set_index("index")["value"]
    after = pd.read_parquet(demo / "plan" / "reliability.parquet").set_index("index")["value"]
    np.testing.assert_allclose(rel["before"], before[rel.index], rtol=1e-12)
    np.testing.assert_allclose(rel["after_plan"], after[rel.index], rtol=1e-12)

    weights = pd.read_parquet(demo / "cluster" / "weights.parquet").set_index("scenario")["weight_days"]
    by_sc = pd.read_parquet(demo / "dispatch" / "agents_by_scenario.parquet")
    payments = by_sc.pivot(index="scenario", columns="agent", values="payment_usd").mul(weights, axis=0).sum()
    agents = csv(demo, "dispatch_agents").set_index("agent")
    np.testing.assert_allclose(agents["payment_usd"], payments[agents.index], rtol=1e-9, atol=1e-6)
    src = pd.read_parquet(demo / "dispatch" / "agents.parquet").set_index("agent")
    np.testing.assert_allclose(agents["gain_usd"], src.loc[agents.index, "gain_usd"], rtol=1e-12)

    adn = pd.read_parquet(demo / "dispatch" / "adn.parquet")
    fee = (adn.pivot(index="scenario", columns="hour", values="fee_income_usd").sum(axis=1) * weights).sum()
    items = csv(demo, "dispatch_adn").set_index("item")["value"]
    assert items["fee_income_usd_per_yr"] == pytest.approx(fee, rel=1e-9)

    days = csv(demo, "dispatch_days")
    manifest = json.loads((demo / "dispatch" / "manifest.json").read_text())
    assert days["iterations"].tolist() == [d["iterations"] for d in manifest["scenarios"]]

    bus = pd.read_parquet(demo / "plan" / "bus.parquet")
    env = csv(demo, "voltage_envelope")
    lowest = bus.groupby("bus")["v_pu"].min()
    np.testing.assert_allclose(env["v_min_pu"], lowest[env["bus"]].to_numpy(), rtol=1e-12)

    co = pd.read_parquet(demo / "coplan" / "agents.parquet")
    pd.testing.assert_frame_equal(csv(demo, "coplan_agents"), co, check_dtype=False, rtol=1e-12)


def test_demo_report_html_is_self_contained(demo: Path) -> None:
    page = (demo / "report" / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page), "the page links something outside itself"
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    pngs = sorted((demo / "report").glob("*.png"))
    assert len(images) == len(pngs) >= 12
    files = {p.read_bytes() for p in pngs}
    for data in images:
        raw = base64.b64decode(data, validate=True)
        assert raw in files  # the same figure as its PNG file
        with Image.open(io.BytesIO(raw)) as im:
            im.load()  # decodes every pixel
            assert im.width >= 900 and im.height >= 300  # 300 dpi at A4 column width or more


# ------------------------------------------------------------------ partial folders and bad input
def test_report_of_some_stages_lists_the_rest_as_not_run(small_study: Study, tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    shutil.copytree(small_study.runs["main"], folder)  # cluster, plan, reliability
    result = report(folder)
    assert result.exit_code == 0, result.output
    md = (folder / "report" / "report.md").read_text()
    for stage in ("powerflow", "dispatch", "coplan"):
        assert f"**{stage}**" in md.split("## Typical days")[0]  # the case section lists it as not run
    assert re.search(r"^## Dispatch.*\n\nNot run", md, flags=re.M)
    assert re.search(r"^## Co-planning.*\n\nNot run", md, flags=re.M)
    assert (folder / "report" / "feeder_map.png").is_file()

    only = tmp_path / "cluster_only"
    assert runner.invoke(app, ["cluster", str(SMALL), "--out", str(only)]).exit_code == 0
    assert report(only).exit_code == 0
    md = (only / "report" / "report.md").read_text()
    assert re.search(r"^## Plan.*\n\nNot run", md, flags=re.M)
    decision = pd.read_parquet(only / "cluster" / "decision.parquet")
    assert decision["seed"].sum() == json.loads((only / "cluster" / "manifest.json").read_text())["summary"]["k"]
    assert (only / "report" / "decision_graph.png").is_file()


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("kind", ["missing", "empty", "other files", "sweep", "bad manifest"])
def test_not_a_results_folder_exits_2_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "x"
    if kind != "missing":
        folder.mkdir()
    if kind == "other files":
        (folder / "notes.txt").write_text("hello")
        (folder / "plan").mkdir()
    if kind == "sweep":
        (folder / "sweep.json").write_text("{}")
        (folder / "variants" / "k=4").mkdir(parents=True)
    if kind == "bad manifest":
        (folder / "plan").mkdir()
        (folder / "plan" / "manifest.json").write_text("{not json")
    before = listing(folder) if folder.exists() else None
    result = report(folder)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "Traceback" not in message and str(folder) in message
    assert {"missing": "does not exist", "empty": "not a results folder", "other files": "not a results folder",
            "sweep": "variants/k=4", "bad manifest": "cannot be read"}[kind] in message
    assert (listing(folder) if folder.exists() else None) == before


def test_a_table_changed_after_its_stage_is_refused(small_study: Study, tmp_path: Path) -> None:
    folder = tmp_path / "tampered"
    shutil.copytree(small_study.runs["main"], folder)
    cost = pd.read_parquet(folder / "plan" / "cost.parquet")
    cost.loc[cost["item"] == "total", "annual_usd"] *= 0.5
    cost.to_parquet(folder / "plan" / "cost.parquet", index=False)
    before = listing(folder)
    result = report(folder)
    assert result.exit_code == 2
    assert "cost.parquet was changed after the plan stage wrote it" in result.output
    assert listing(folder) == before


# ------------------------------------------------------------------ in a real browser
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars"]
PROBE = """<script>
window.addEventListener("load", () => {
  // each image drawn on a canvas and read back: the browser decoded every pixel of it
  const out = [...document.images].map(i => {
    const r = i.getBoundingClientRect(), c = document.createElement("canvas");
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    let ink = 0;
    if (i.complete && i.naturalWidth > 0) {
      const ctx = c.getContext("2d"); ctx.drawImage(i, 0, 0);
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let k = 0; k < px.length; k += 4) if (Math.min(px[k], px[k + 1], px[k + 2]) < 200) ink++;
    }
    return {alt: i.alt, decoded: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight,
            ink: ink / Math.max(1, c.width * c.height), box: [r.left + scrollX, r.top + scrollY, r.width, r.height]};
  });
  const pre = document.createElement("pre"); pre.id = "probe";
  pre.textContent = JSON.stringify({images: out, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium on this machine (make test installs Debian's chromium where it runs as root with "
                "apt-get): the HTML report is not checked in a browser")


def test_report_page_in_headless_chromium(demo: Path, tmp_path: Path) -> None:
    """The page loads from a file, every figure decodes in the browser, and a screenshot shows them."""
    browser = chromium()
    page = (demo / "report" / "report.html").read_text()
    probe = tmp_path / "probe.html"  # the page plus a script that reports what the browser made of its images
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    flags = [*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    dom = subprocess.run([browser, *flags, "--window-size=1000,1000", "--dump-dom", probe.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    assert found, "the page's load event never ran"
    state = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    images = state["images"]
    assert len(images) == page.count("data:image/png;base64,") >= 12
    assert all(i["decoded"] and i["ink"] > 0.005 for i in images), [(i["alt"], i["ink"]) for i in images]

    height = int(state["height"])
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--window-size=1000,{height}", f"--screenshot={shot}",
                    (demo / "report" / "report.html").resolve().as_uri()], capture_output=True, timeout=120, check=True)
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"), dtype=float)
    assert pixels.shape[0] >= height - 1
    for img in images:  # each figure's box in the screenshot holds a drawing: ink, and the palette's colours
        x, y, w, h = (round(v) for v in img["box"])
        box = pixels[y:y + h, x:x + w]
        ink = (box.min(axis=2) < 200).mean()
        colour = (box.max(axis=2) - box.min(axis=2) > 80).mean()
        assert ink > 0.01 and colour > 0.002, (img["alt"], ink, colour)


def test_every_report_table_is_documented(demo: Path) -> None:
    """docs/report.md names every column of every CSV the report writes (or the stage table it repeats)."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    doc = (docs / "report.md").read_text()
    repeats = set(re.findall(r"`(\w+)` is `\w+/\w+`", doc))
    documented = set(re.findall(r"`(\w+)`", doc + (docs / "results.md").read_text()))
    for path in sorted((demo / "report").glob("*.csv")):
        assert f"`{path.stem}`" in doc or f"`{path.name}`" in doc, f"docs/report.md does not name {path.name}"
        if path.stem in repeats or path.stem == "plan_sites":
            continue
        missing = [c for c in pd.read_csv(path, nrows=0).columns if c not in documented]
        assert not missing, f"docs/report.md: {path.name} columns {missing} not documented"
