import pytest

from transferlab.config import parse_params
from transferlab.runs import RunSpec, planned_runs

from conftest import tiny_params


@pytest.mark.parametrize(
    "run_id", ["s0/baseA/r0", "s12/A3B+/r2", "s1/B7B/r0", "s0/R3B/r1", "smn/A5B/r0", "snm/B1A+/r3"]
)
def test_run_ids_round_trip(run_id):
    assert str(RunSpec.parse(run_id)) == run_id


def test_treatment_names_follow_the_paper_in_both_directions():
    assert RunSpec.parse("s0/A3B/r0").treatment == "AnB"
    assert RunSpec.parse("s0/B3A/r0").treatment == "AnB"  # B to A pools with A to B
    assert RunSpec.parse("s0/B3B+/r0").treatment == "BnB+"
    assert RunSpec.parse("s0/A3A+/r0").treatment == "BnB+"
    assert RunSpec.parse("s0/R3B/r0").treatment == "random"
    assert RunSpec.parse("s0/baseB/r0").treatment == "base"


@pytest.mark.parametrize("bad", ["s0/A3C/r0", "s0/A3B", "0/A3B/r0", "s0/R3B+/r0", "s0/A0B/r0", "s0/baseC/r0"])
def test_bad_run_ids_are_refused(bad):
    with pytest.raises(ValueError):
        RunSpec.parse(bad)


def test_planned_runs_cover_every_treatment_per_layer_and_direction():
    p = parse_params(tiny_params(splits=[0, "mn"], replicates=[0, 1], **{"transfer.targets": ["A", "B"]}))
    runs = planned_runs(p)
    per_unit = 2 + 2 * 2 * (4 + 1)  # bases, then per target x layer: 4 treatments + random
    assert len(runs) == 2 * 2 * per_unit
    assert len(set(runs)) == len(runs)
    assert RunSpec.parse("smn/B7A+/r1") in runs
    assert all(r.source_base in runs for r in runs if r.source_base)


CONFIGURATIONS = {
    "default": {},
    "everything": {
        "splits": [0, 3, "mn", "nm"],
        "replicates": [0, 2],
        "transfer.targets": ["A", "B"],
        "binary.betas": [0.0, 0.25, 1.0],
        "binary.heads": [1, 4],
        "binary.frozen_units": [0, 3],
        "binary.partition_seeds": [0, 7],
        "strategies.images_per_class": [5, "all"],
        "strategies.cut_layers": [1, 7],
        "size.images_per_class": [1, 10, 1300],
        "transfer.control_all_classes": [0, 1, 7],
    },
    "pretrained": {
        "model.name": "resnet18",
        "analysis.decaf_units": [4, 5],
        "pretrained.weights": ["IMAGENET1K_V1"],
        "transfer.layers": [1, 3],
    },
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_every_planned_id_round_trips_through_the_grammar(name):
    from transferlab.config import parse_params
    from transferlab.runs import parse_run, planned_all

    from conftest import tiny_params

    planned = planned_all(parse_params(tiny_params(**CONFIGURATIONS[name])))
    ids = [str(r) for r in planned]
    assert len(set(ids)) == len(ids)
    for run, run_id in zip(planned, ids):
        assert parse_run(run_id) == run and str(parse_run(run_id)) == run_id


def test_no_module_but_runs_spells_a_run_id():
    """Run ids and the names derived from them are formatted by runs.py's forms only, and
    taken apart by them only (no `.split("/")` of an id)."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "src/transferlab"
    hand_built = re.compile(r"""f["'][^"']*(\bs\{|/r\{|binA_|binB_|strat-|stratP-|cut\{|cutP\{)|\.split\(["']/["']\)""")
    found = [
        f"{path.relative_to(package)}:{i}"
        for path in package.rglob("*.py")
        if path.name != "runs.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if hand_built.search(line)
    ]
    assert not found, found
