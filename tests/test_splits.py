import numpy as np
import pytest

from transferlab.config import SplitConfig
from transferlab.data.splits import by_classes, by_group, by_source, make_split, random_split, yosinski2014_halves
from transferlab.errors import InputError


def test_paper_halves_for_imagenet_match_the_papers_code():
    s = yosinski2014_halves(1000, 0)
    assert s.classes_a[:5] == [0, 1, 2, 5, 9]
    assert len(s.classes_a) == len(s.classes_b) == 500
    for seed in range(4):  # the paper's own recipe, written out: np.random.seed([s]) on the global generator
        np.random.seed([seed])
        expected = sorted(np.random.choice(np.arange(1000), 500, replace=False).tolist())
        assert yosinski2014_halves(1000, seed).classes_a == expected


@pytest.mark.parametrize("make", [lambda s: yosinski2014_halves(20, s), lambda s: random_split(20, s, 0.5)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_seeded_halves_are_disjoint_complete_and_deterministic(make, seed):
    s = make(seed)
    assert set(s.classes_a).isdisjoint(s.classes_b)
    assert sorted(s.classes_a + s.classes_b) == list(range(20))
    assert s == make(seed)
    assert s.classes_a == sorted(s.classes_a)
    assert make(seed).classes_a != make(seed + 10).classes_a


def test_random_fraction_sets_the_size_of_a():
    assert len(random_split(20, 0, 0.25).classes_a) == 5
    with pytest.raises(InputError, match=r"split.fraction: found 0.1, .*non-empty"):
        random_split(4, 0, 0.1)


def test_manmade_natural_split_follows_the_groups():
    groups = ["manmade"] * 3 + ["natural"] * 2
    assert by_group(groups, "mn").classes_a == [0, 1, 2]
    assert by_group(groups, "nm").classes_a == [3, 4]
    with pytest.raises(InputError, match="hierarchy"):
        by_group(["manmade"] * 4, "mn")


def test_explicit_class_lists_take_names_or_indices_and_refuse_what_cannot_work():
    classes = ["cat", "dog", "car", "bus"]
    s = by_classes(classes, ["car", 0], [])
    assert (s.classes_a, s.classes_b) == ([0, 2], [1, 3])
    assert by_classes(classes, ["cat"], ["bus"]).classes_b == [3]
    with pytest.raises(InputError, match="split.classes_a: found 'cow', not a class"):
        by_classes(classes, ["cow"], [])
    with pytest.raises(InputError, match="split.classes_b: found 'cat', which is also in split.classes_a"):
        by_classes(classes, ["cat"], [0])
    with pytest.raises(InputError, match="split.classes_b: found an empty half"):
        by_classes(classes, classes, [])
    with pytest.raises(InputError, match=r"split.classes_a: found 7, allowed: class indices 0..3"):
        by_classes(classes, [7], [])


def test_cross_split_takes_each_data_set_as_a_half():
    s = by_source(["cifar100"] * 3 + ["svhn"] * 2)
    assert (s.classes_a, s.classes_b) == ([0, 1, 2], [3, 4])
    with pytest.raises(InputError, match="needs two"):
        by_source(["cifar10"] * 4)


def test_make_split_dispatches_on_the_id_and_method():
    classes, groups = [f"c{i}" for i in range(10)], ["manmade"] * 5 + ["natural"] * 5
    args = (classes, groups, ["x"] * 10)
    assert make_split(3, *args, SplitConfig()) == yosinski2014_halves(10, 3)
    assert make_split("3", *args, SplitConfig(method="random", fraction=0.3)) == random_split(10, 3, 0.3)
    assert make_split("nm", *args, SplitConfig()).classes_a == [5, 6, 7, 8, 9]
    assert make_split("classes", *args, SplitConfig(classes_a=["c1"])).classes_a == [1]
    every = make_split("all", *args, SplitConfig())
    assert every.classes_a == every.classes_b == list(range(10))
    with pytest.raises(InputError, match="unknown split id"):
        make_split("xy", *args, SplitConfig())
