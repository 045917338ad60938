"""The `features` stage: activations of every unit of the analysed nets on task B's images,
cached as NumPy archives (a DVC output). The `analyze` stage fits its probes and estimates
on this cache, so changing only its own settings (analysis.probe_c, cka_batch_size) reruns
no net.

Folder layout (one per split and replicate):
    index.json              what is there: sources, transfer nets, depth, data draws
    <source file>.npz       b_train_<n>, b_test_<n> (and own_train_<n> or logits_b_train), labels
    draws.npz               draw_<d>: the rows of b_train that data draw d holds (analysis.data_draws)
    transfer/<run>.npz      b_test_<n> of a transfer net on B (for CKA against baseB)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from transferlab.analysis import DRAWS_FILE
from transferlab.analysis.features import unit_features
from transferlab.artifacts import atomic_dir, provenance, save_npz
from transferlab.config import Params
from transferlab.data.batches import channel_stats, random_crop_flip, random_rotate
from transferlab.data.dataset import TaskData, select_classes
from transferlab.data.files import as_tensor
from transferlab.data.sampling import per_class_subset
from transferlab.data.stages import load_dataset, load_split
from transferlab.errors import InputError
from transferlab.harness import load_checkpoint
from transferlab.progress import progress_iter
from transferlab.runs import A_PRIME_FOLDER, BinaryRun, Layout, Run, RunSpec, run_name


@dataclass(frozen=True)
class Source:
    """A net whose units are analysed: its name in the table, cache file and checkpoint, and
    the half it was trained on (None: trained elsewhere, e.g. the pretrained net)."""

    name: str
    file: str
    checkpoint: Path
    half: str | None


def sources(params: Params, layout: Layout, runs: list[Run]) -> list[Source]:
    """Of the planned runs of one split and replicate: baseA, baseB, the binary study's A'
    nets of every beta > 0 and head count (first partition seed) when asked for, and the
    pretrained net when params name one."""
    bases = sorted((r for r in runs if isinstance(r, RunSpec) and r.is_base), key=lambda r: r.target)
    out = [Source(r.target, f"base{r.target}", layout.model(r), r.target) for r in bases]
    if params.analysis.binary_sources:
        first_partition = params.binary.partition_seeds[0]
        a_prime = [
            r
            for r in runs
            if isinstance(r, BinaryRun) and r.frozen is None and r.beta > 0 and r.partition_seed == first_partition
        ]
        out += [
            Source(f"A'{r.beta:g}h{r.heads}", A_PRIME_FOLDER.format(beta=r.beta, heads=r.heads), layout.model(r), "A")
            for r in a_prime
        ]
    out += [Source("P", f"pretrained_{w}", layout.pretrained_model(), None) for w in params.pretrained.weights]
    return out


def _images(task: TaskData, part: str, per_class: int | None, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    x, y = (task.train_x, task.train_y) if part == "train" else (task.test_x, task.test_y)
    keep = per_class_subset(y, per_class, seed)
    return as_tensor(x[keep]), y[keep].numpy()  # image files decoded at the held-out transform


def draw_seed(seed: int, draw: int) -> int:
    """Draw 0 is the root seed's own subset; draw d > 0 is seeded by (seed, d)."""
    return seed if draw == 0 else int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


def drawn_images(y: torch.Tensor, per_class: int | None, seed: int, draws: list[int]) -> tuple[torch.Tensor, dict]:
    """The training images of every data draw together (sorted indices into y: one draw alone
    is exactly its subset), and each draw's rows among them."""
    picks = {d: per_class_subset(y, per_class, draw_seed(seed, d)) for d in draws}
    pool = torch.unique(torch.cat(list(picks.values())))
    return pool, {d: np.searchsorted(pool.numpy(), p.numpy()) for d, p in picks.items()}


def augmented(
    x: torch.Tensor, y: np.ndarray, copies: int, padding: int, seed: int, degrees: float = 0.0
) -> tuple[torch.Tensor, np.ndarray]:
    """The "CNNaug" variant (Razavian et al. 2014): the training images plus `copies` randomly
    cropped, flipped and (with degrees > 0) rotated copies."""
    gen = torch.Generator().manual_seed(seed)
    copy = lambda: random_crop_flip(x, padding, gen)  # noqa: E731
    xs = [x] + [random_rotate(copy(), degrees, gen) if degrees else copy() for _ in range(copies)]
    return torch.cat(xs), np.tile(y, copies + 1)


def _net(path: Path, task: TaskData):
    """The net of a checkpoint and the input normalisation it was trained with."""
    net, state = load_checkpoint(path)
    stats = (
        (state["input_mean"], state["input_std"]) if "input_mean" in state else channel_stats(as_tensor(task.train_x))
    )
    return net, stats


def _per_unit(prefix: str, features: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}_{i + 1}": f for i, f in enumerate(features)}


def source_arrays(net, mean, std, b_data: tuple, own: tuple | None, device: torch.device) -> dict[str, np.ndarray]:
    """Every unit's features of B's training and test images, and what LEEP needs of the source
    task: its own training images' features (a net trained on a half) or the net's own
    classifier outputs on B's training images (a net trained elsewhere)."""
    b_train_x, b_train_y, b_test_x, b_test_y = b_data
    b_train = unit_features(net, b_train_x, mean, std, device, logits=own is None)
    arrays = {"b_train_y": b_train_y, "b_test_y": b_test_y}
    if own is not None:
        arrays |= {"own_y": own[1], **_per_unit("own_train", unit_features(net, own[0], mean, std, device))}
    else:
        arrays["logits_b_train"] = b_train.pop()
    return arrays | _per_unit("b_train", b_train) | _per_unit("b_test", unit_features(net, b_test_x, mean, std, device))


def feature_nets(params: Params, layout: Layout, runs: list[Run]) -> tuple[list[Source], list[RunSpec]]:
    """The source nets and B's transfer nets of one split and replicate (`runs`: their planned
    runs, of every study; none in the analysis-only configuration) whose features are extracted;
    every checkpoint must exist (checked before the command waits for cores)."""
    nets = sources(params, layout, runs)
    transfer = [r for r in runs if isinstance(r, RunSpec) and not r.is_base and r.target == "B"]
    missing = [
        str(p) for p in [s.checkpoint for s in nets] + [layout.model(spec) for spec in transfer] if not p.is_file()
    ]
    if missing:
        raise InputError(
            f"features: {len(missing)} checkpoint(s) missing, e.g. {', '.join(missing[:3])} (train them first: dvc repro)"
        )
    return nets, transfer


def extract(
    params: Params,
    split_id: str,
    replicate: int,
    nets: list[Source],
    transfer: list[RunSpec],
    layout: Layout,
    out: Path,
    device: torch.device,
) -> dict:
    """Write the feature cache of one split and replicate (`nets` and `transfer`: feature_nets's);
    return its index."""
    cfg = params.analysis
    ds, split = load_dataset(layout.dataset, params.data.workers), load_split(layout.split_file(split_id))
    tasks = {h: select_classes(ds, split.half(h)) for h in ("A", "B")}
    pool, draw_rows = drawn_images(tasks["B"].train_y, cfg.max_train_per_class, params.seed, cfg.data_draws)
    b_train_x, b_train_y = as_tensor(tasks["B"].train_x[pool]), tasks["B"].train_y[pool].numpy()
    if cfg.augment_copies:  # each image's copies follow in blocks: a draw holds its images' copies too
        b_train_x, b_train_y = augmented(
            b_train_x,
            b_train_y,
            cfg.augment_copies,
            params.training("base").crop_padding,
            params.seed,
            cfg.rotate_degrees,
        )
        draw_rows = {
            d: np.concatenate([r + k * len(pool) for k in range(cfg.augment_copies + 1)]) for d, r in draw_rows.items()
        }
    b_test_x, b_test_y = _images(tasks["B"], "test", None, params.seed)
    b_data = (b_train_x, b_train_y, b_test_x, b_test_y)
    own = {
        h: _images(tasks[h], "train", cfg.max_train_per_class, params.seed) for h in ("A", "B")
    }  # each source's own task
    index = {"split": split_id, "replicate": replicate, "sources": [], "transfer": [], "draws": cfg.data_draws}
    index |= provenance()
    with atomic_dir(out) as tmp:
        save_npz(tmp / DRAWS_FILE, {f"draw_{d}": rows for d, rows in draw_rows.items()})
        for src in nets:
            net, (mean, std) = _net(src.checkpoint, tasks[src.half or "B"])
            arrays = source_arrays(net, mean, std, b_data, own[src.half] if src.half else None, device)
            save_npz(tmp / f"{src.file}.npz", arrays)
            index["sources"].append({"name": src.name, "file": f"{src.file}.npz", "half": src.half})
            index["depth"] = net.depth
        index["transfer"] = _transfer_features(transfer, layout, b_test_x, tasks["B"], tmp, device)
        (tmp / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def _transfer_features(
    specs: list[RunSpec], layout: Layout, x: torch.Tensor, task: TaskData, out: Path, device
) -> list[dict]:
    """B's test features of every transfer net on B, for CKA against the same unit of baseB."""
    (out / "transfer").mkdir()
    entries = []
    for spec in progress_iter(specs, "features of the transfer nets"):
        run = run_name(spec)  # e.g. A3B+
        net, (mean, std) = _net(layout.model(spec), task)
        save_npz(out / "transfer" / f"{run}.npz", _per_unit("b_test", unit_features(net, x, mean, std, device)))
        entries.append({"treatment": spec.treatment, "n": spec.n, "file": f"transfer/{run}.npz"})
    return entries
