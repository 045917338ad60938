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
