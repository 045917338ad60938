"""What the GPU paths cost, in one run and one JSON (reports/bench/gpu_bench.json): on a machine
with one CUDA GPU, `make bench-gpu` (about 8 minutes there).

1. trainer: the trainer against its like-with-like limit at 32 px (trainer_throughput.py's
   loops: bf16 autocast and channels_last, as every run on CUDA), with torch.compile off and on
   (off only with --tiny).
2. grid_slice: a CIFAR-100-sized slice of the grid (the embedded generator at CIFAR-100's shape:
   100 classes, 500 training and 100 test images of each, 32 px; baseA, baseB, AnB, BnB and
   their fine-tuned forms at three n) through `dvc repro` (pipeline_time.py): the fixed cost per
   run and the training loops' share of the wall time, with the GPU's utilisation sampled every
   half second (nvidia-smi) while it runs.
3. jpeg: folder data at 224 px, decoded by the PIL workers of the data path (data/files.py,
   with its training crop and flip) against torchvision's decode_jpeg on the GPU, batched, and
   a resize there: images/s of each on the same files.

`--tiny` runs each part at a tiny size, on whatever device there is (the tests run it on the
CPU so that it cannot rot; its figures there mean nothing). `benchmarks/schedule_sim.py
--measured reports/bench/gpu_bench.json` then projects the paper-sized grid from the slice's
per-run seconds.

    python benchmarks/gpu_bench.py [--tiny] [--device cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from transferlab.config import DataConfig, SyntheticConfig, TrainConfig
from transferlab.data.dataset import prepare_synthetic, select_classes
from transferlab.data.files import ImageFiles
from transferlab.devices import choose_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainer_throughput import SIZE, limit_loop, trainer_loop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CIFAR100 = {"num_classes": 100, "train_per_class": 500, "test_per_class": 100}
TINY = {"num_classes": 4, "train_per_class": 16, "test_per_class": 4}


def trainer_part(device: torch.device, shape: dict, epochs: int, modes: tuple[bool, ...]) -> dict:
    """images/s of the trainer and of its limit, with torch.compile off and/or on (the first
    epoch: warm-up, compilation included)."""
    data = DataConfig(image_size=SIZE, synthetic=SyntheticConfig(**shape))
    task = select_classes(prepare_synthetic(data), list(range(shape["num_classes"])))
    out = {}
    batch = min(TrainConfig().batch_size, len(task.train_y) // 4)  # (the tiny set: a few steps an epoch)
    for compile_ in modes:
        cfg = TrainConfig(epochs=epochs, compile=compile_, batch_size=batch)
        steps = len(task.train_y) // cfg.batch_size
        limit, trainer = limit_loop(task, cfg, device, steps), trainer_loop(task, cfg, device)
        out["compile_on" if compile_ else "compile_off"] = {
            "trainer_images_per_s": round(trainer, 1),
            "limit_images_per_s": round(limit, 1),
            "trainer_over_limit": round(trainer / limit, 3),
        }
    return {"image_size": SIZE, "train_images": len(task.train_y), "batch_size": batch, "epochs": epochs, **out}


class GpuSampler(threading.Thread):
    """nvidia-smi's utilisation.gpu (%) every half second, until stopped (none without it)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        if not shutil.which("nvidia-smi"):
            return
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=0"]
        while not self.stop.wait(0.5):
            proc = subprocess.run(query, capture_output=True, text=True)
            if proc.returncode == 0 and proc.stdout.strip():
                self.samples.append(float(proc.stdout.split()[0]))


def grid_slice_part(shape: dict, layers: list[int], epochs: int) -> dict:
    """pipeline_time.py on a slice of the grid at `shape`, with the GPU's utilisation."""
    settings = {
        "data.image_size": SIZE,
        "data.synthetic.num_classes": shape["num_classes"],
        "data.synthetic.train_per_class": shape["train_per_class"],
        "data.synthetic.test_per_class": shape["test_per_class"],
        "train.epochs": epochs,
        "transfer.layers": layers,
        "binary.betas": [],
        "strategies.names": [],
        "strategies.baselines": [],
        "strategies.cut_layers": [],
        "size.images_per_class": [],
    }
    with tempfile.TemporaryDirectory(prefix="transferlab-gpu-bench-") as tmp:
        out = Path(tmp) / "pipeline.json"
        cmd = [sys.executable, str(ROOT / "benchmarks/pipeline_time.py"), "--out", str(out)]
        cmd += [arg for key, value in settings.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
        sampler = GpuSampler()
        sampler.start()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sampler.stop.set()
        sampler.join()
        if proc.returncode != 0:
            sys.exit(f"gpu_bench: pipeline_time.py failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
        timing = json.loads(out.read_text())
    keep = ("git_revision", "total_s", "efficiency", "runs", "startup_s_median", "startup_s_max")
    keep += ("run_seconds", "run_train_seconds", "run_startup_seconds")
    return {
        "set": settings,
        **{k: timing[k] for k in keep},
        "gpu_utilisation_pct_mean": round(statistics.fmean(sampler.samples), 1) if sampler.samples else None,
        "gpu_utilisation_samples": len(sampler.samples),
    }


def _jpegs(folder: Path, count: int, side: int) -> list[str]:
    """`count` JPEG files of side x side pixels (smooth random colour fields, as photos compress)."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        small = torch.randint(0, 256, (3, 8, 8), generator=gen, dtype=torch.uint8)
        img = torch.nn.functional.interpolate(small[None].float(), size=(side, side), mode="bilinear")[0]
        buf = io.BytesIO()
        Image.fromarray(img.clamp(0, 255).byte().permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=90)
        (folder / f"{i:05d}.jpg").write_bytes(buf.getvalue())
        paths.append(f"{i:05d}.jpg")
    return paths


def jpeg_part(device: torch.device, count: int, side: int, workers: int, batch: int = 64) -> dict:
    """images/s decoding `count` JPEGs to 224 px: the data path's PIL workers against
    decode_jpeg on `device` (batched) with a resize there; each timed over a second pass."""
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2.functional import resize

    with tempfile.TemporaryDirectory(prefix="transferlab-jpeg-") as tmp:
        paths = _jpegs(Path(tmp), count, side)
        files = ImageFiles(tmp, tuple(paths), 224, workers=workers)

        def pil() -> None:
            for _ in files.batches(batch, augment=True, generator=torch.Generator().manual_seed(0)):
                pass

        def on_device() -> None:
            for start in range(0, count, batch):
                data = [
                    torch.frombuffer(bytearray(files.read(i)), dtype=torch.uint8)
                    for i in range(start, min(start + batch, count))
                ]
                images = decode_jpeg(data, device=device)
                torch.stack([resize(x, [224, 224], antialias=True) for x in images])
            if device.type == "cuda":
                torch.cuda.synchronize()

        rates = {}
        for name, loop in (("pil_workers", pil), ("decode_jpeg_on_device", on_device)):
            loop()  # warm-up: workers, decoder and kernels
            t0 = time.perf_counter()
            loop()
            rates[name] = round(count / (time.perf_counter() - t0), 1)
    return {
        "files": count,
        "file_side_px": side,
        "pil_workers": workers,
        "images_per_s": rates,
        "device_over_pil": round(rates["decode_jpeg_on_device"] / rates["pil_workers"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="every part at a tiny size (the tests, on a CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="PIL decoding workers")
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench/gpu_bench.json")
    args = parser.parse_args()
    device = choose_device(args.device)
    if device.type != "cuda" and not args.tiny:
        parser.error(f"no CUDA GPU here ({device}): the figures would not be a GPU's; --tiny runs it at a tiny size")
    shape, started = (TINY if args.tiny else CIFAR100), time.perf_counter()
    result = {
        "benchmark": "gpu_bench",
        "tiny": args.tiny,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": str(torch.__version__)},
        # (compiling takes minutes on a CPU: the tiny run leaves it off; tests/test_shared_caches.py compiles)
        "trainer": trainer_part(
            device, shape, epochs=2 if args.tiny else 3, modes=(False,) if args.tiny else (False, True)
        ),
        "grid_slice": grid_slice_part(shape, [1] if args.tiny else [1, 4, 7], epochs=1 if args.tiny else 10),
        "jpeg": jpeg_part(device, 8 if args.tiny else 2048, 64 if args.tiny else 500, 1 if args.tiny else args.workers),
    }
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "grid_slice"}, indent=2))


if __name__ == "__main__":
    main()
