"""Trainer throughput against the hardware limit and against the usual DataLoader loop.

Three loops train the same model (the default convnet8) with the same optimiser, batch size,
input shape and memory format (channels_last) on the same images, alternating, for several
rounds:

- trainer:   transferlab's `fit` (device-side uint8 data, per-image crop and flip on the
             whole batch, index gathers);
- limit:     forward + backward + step on one fixed, pre-made batch of the same images,
             normalised (no data path at all): what the trainer could reach at best;
- reference: the public reproductions' loop: a data set of PIL images with torchvision's
             RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize, through
             a DataLoader with worker processes.

Like with like: each loop runs the same number of epochs of the same number of steps, each
epoch's training steps timed by the same clock (evaluations left out), and a loop's figure is
the median of its epochs' rates after the first (warm-up: allocator, caches, workers).
Writes reports/bench/trainer_throughput.json with each loop's median over rounds and its
spread (min, max), and the ratios trainer/limit (target >= 0.9; above 1.05 would mean the
"limit" is no limit) and trainer/reference (target >= 1.5).

    python benchmarks/trainer_throughput.py [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from transferlab.config import DataConfig, ModelConfig, TrainConfig
from transferlab.data.batches import channel_stats
from transferlab.data.dataset import prepare_synthetic, select_classes
from transferlab.devices import choose_device
from transferlab.models import create_model
from transferlab.train import FitOptions, compiled, fit, make_optimizer
from transferlab.transfer import param_groups

ROOT = Path(__file__).resolve().parents[1]


class PILImages(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: a PIL image from HWC uint8, then the transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.images = x.permute(0, 2, 3, 1).numpy()
        self.labels = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


SIZE = 32  # pixels: CIFAR's size, where torchvision's reference loop is the usual one (the default data is 16)


def _model(classes: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    m = create_model("convnet8", classes, **ModelConfig().options(), image_size=SIZE)
    return m.to(device).to(memory_format=torch.channels_last).train()


def after_warmup(rates: list[float]) -> float:
    """The median of the epochs' rates after the first."""
    return statistics.median(rates[1:])


def trainer_loop(task, cfg: TrainConfig, device: torch.device) -> float:
    """images/s of fit's training steps, per epoch (fit times an epoch's steps up to its
    evaluation; with one evaluation per epoch, every step of the epoch and nothing else)."""
    model = _model(task.num_classes, device)
    history = fit(model, task, cfg, param_groups(model, 0, 1.0), FitOptions(device, seed=0, label="trainer"))
    return after_warmup([r["images_per_s"] for r in history.records])


def limit_loop(task, cfg: TrainConfig, device: torch.device, steps_per_epoch: int) -> float:
    """images/s of forward + backward + step on batches of the task's images that were cut,
    normalised and put on the device before the clock starts, per epoch. (One batch repeated
    is no limit: the net memorises it, and its vanishing gradients turn into denormal floats
    that make a CPU many times slower.)"""
    model = _model(task.num_classes, device)
    opt = make_optimizer(param_groups(model, 0, 1.0), cfg)
    net = compiled(model) if cfg.compile else model  # as fit runs it
    mean, std = channel_stats(task.train_x)
    x_all = ((task.train_x.float() / 255 - mean) / std).to(device).contiguous(memory_format=torch.channels_last)
    y_all = task.train_y.to(device)
    rates, gen = [], torch.Generator().manual_seed(0)
    for _ in range(cfg.epochs):
        order = (
            torch.randperm(len(y_all), generator=gen)[: steps_per_epoch * cfg.batch_size]
            .view(steps_per_epoch, -1)
            .to(device)
        )
        batches = [(x_all[i], y_all[i]) for i in order]  # gathered before timing
        rates.append(_timed_steps(net, opt, batches, device))
    return after_warmup(rates)


def reference_loop(task, cfg: TrainConfig, device: torch.device, epochs: int, workers: int) -> float:
    """images/s of the usual torchvision + DataLoader loop."""
    mean, std = (t.flatten().tolist() for t in channel_stats(task.train_x))
    tf = transforms.Compose(
        [
            transforms.RandomCrop(SIZE, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    loader = torch.utils.data.DataLoader(
        PILImages(task.train_x, task.train_y, tf),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    model = _model(task.num_classes, device)
    opt = make_optimizer(param_groups(model, 0, 1.0), cfg)
    rates = []
    for _ in range(epochs):
        batches = ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader)
        rates.append(_timed_steps(model, opt, batches, device))
    return after_warmup(rates)


def _timed_steps(model: nn.Module, opt, batches, device: torch.device) -> float:
    from transferlab.train import autocast

    seen, t0 = 0, time.perf_counter()
    for x, y in batches:
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop and round (the first is warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument(
        "--train-per-class", type=int, default=None, help="training images per class (default: the embedded data's)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench/trainer_throughput.json")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    device = choose_device(args.device)
    data = DataConfig(image_size=SIZE)
    if args.train_per_class:
        data = DataConfig(image_size=SIZE, synthetic={"train_per_class": args.train_per_class})
    task = select_classes(prepare_synthetic(data), list(range(data.synthetic.num_classes)))
    cfg = TrainConfig(epochs=args.epochs)
    steps = len(task.train_y) // cfg.batch_size  # per epoch, as fit and the DataLoader (drop_last) take them
    results: dict[str, list[float]] = {"trainer": [], "limit": [], "reference": []}
    for r in range(args.rounds):  # alternating, so that drifts of a noisy machine hit all three
        results["limit"].append(limit_loop(task, cfg, device, steps))
        results["trainer"].append(trainer_loop(task, cfg, device))
        results["reference"].append(reference_loop(task, cfg, device, args.epochs, args.workers))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} img/s" for k, v in results.items()), flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    out = {
        "benchmark": "trainer_throughput",
        "device": str(device),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": str(torch.__version__),
            "threads": torch.get_num_threads(),
        },
        "model": "convnet8",
        "batch_size": cfg.batch_size,
        "train_images": len(task.train_y),
        "dataloader_workers": args.workers,
        "images_per_s": {k: round(v, 1) for k, v in med.items()},
        "spread": {k: {"min": round(min(v), 1), "max": round(max(v), 1)} for k, v in results.items()},
        "rounds": {k: [round(x, 1) for x in v] for k, v in results.items()},
        "trainer_over_limit": round(med["trainer"] / med["limit"], 3),
        "trainer_over_reference": round(med["trainer"] / med["reference"], 3),
        "targets": {"trainer_over_limit": 0.9, "trainer_over_reference": 1.5},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
