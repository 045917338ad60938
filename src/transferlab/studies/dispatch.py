"""The one entry point of every training stage: a run id says which study trains it (each
study's trainer imported only when one of its runs is trained)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from transferlab.config import Params
    from transferlab.runs import Layout, Run
    from transferlab.train import History


def train(params: Params, run: Run, layout: Layout, device: torch.device) -> History:
    """Train one planned run of any study, reading and writing the paths `layout` gives it."""
    from transferlab.runs import AllClassesControl, BinaryRun, RunSpec, SizeRun

    if isinstance(run, AllClassesControl):
        from transferlab.studies.grid.train import control_all_classes

        return control_all_classes(params, run, layout, device)
    if isinstance(run, RunSpec):
        from transferlab.studies.grid import train as grid

        return (
            grid.train_base(params, run, layout, device) if run.is_base else grid.transfer(params, run, layout, device)
        )
    if isinstance(run, BinaryRun):
        from transferlab.studies.binary import train as binary

        return (
            binary.train_a_prime(params, run, layout, device)
            if run.frozen is None
            else binary.finetune_on_b(params, run, layout, device)
        )
    if isinstance(run, SizeRun):
        from transferlab.studies.size.train import train_size

        return train_size(params, run, layout, device)
    from transferlab.studies.strategies import train as strategies

    if run.name == "best_linear":
        from transferlab.studies.strategies.linear import best_linear

        return best_linear(params, run, layout, device)
    if run.name == "cut":
        return strategies.cut(params, run, layout, device)
    if run.source == "none":
        return strategies.scratch(params, run, layout, device)
    return strategies.strategy(params, run, layout, device)
