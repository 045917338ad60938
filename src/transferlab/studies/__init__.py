"""The studies: each module owns its runs' training (and the tables and figures of its rows).

`train` is the one entry point of every training stage: a run id says which study trains it."""

from __future__ import annotations

import torch

from transferlab.config import Params
from transferlab.runs import BinaryRun, Layout, Run, RunSpec, StrategyRun
from transferlab.train import History


def train(params: Params, run: Run, layout: Layout, device: torch.device) -> History:
    """Train one planned run of any study, reading and writing the paths `layout` gives it."""
    if isinstance(run, RunSpec):
        from transferlab.studies import grid

        return grid.train_base(params, run, layout, device) if run.is_base else grid.transfer(params, run, layout, device)
    if isinstance(run, BinaryRun):
        from transferlab.studies import binary

        return binary.train_a_prime(params, run, layout, device) if run.frozen is None else binary.finetune_on_b(params, run, layout, device)
    assert isinstance(run, StrategyRun)
    from transferlab.studies import strategies

    return strategies.cut(params, run, layout, device) if run.name == "cut" else strategies.strategy(params, run, layout, device)
