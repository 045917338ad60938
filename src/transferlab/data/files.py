"""Large images read from their files while training (`data.storage: files`).

A folder data set at 224 px does not fit in memory as one tensor (ImageNet's training set
would be 193 GB of uint8). Here the prepared data set holds the file list instead, and
every epoch decodes the images in DataLoader worker processes: training images with a
random resized crop and a flip, held-out images resized and centre-cropped. Batches leave
the workers as uint8 NCHW tensors, so the trainer normalises them on its device as it
does for the in-memory tensors.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from transferlab.errors import InputError
from transferlab.progress import progress_iter

# Held-out images: resize the short side to size / 0.875, then the centre crop (the usual
# ImageNet evaluation: 256 -> 224).
EVAL_RESIZE = 1 / 0.875
# Larger images are refused as decompression bombs (Pillow only warns below twice its own
# default of 89 M pixels); ILSVRC-2012's largest is about 12 M.
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class ImageFiles:
    """Image files (paths relative to `root`), decoded to size x size RGB on demand."""

    root: str
    paths: tuple[str, ...]
    size: int
    workers: int = 4

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> ImageFiles:
        """The files at `index`: a slice, a bool mask or a tensor/list of positions."""
        if isinstance(index, slice):
            picked = self.paths[index]
        else:
            index = torch.as_tensor(index)
            positions = torch.nonzero(index).flatten() if index.dtype == torch.bool else index.flatten()
            picked = tuple(self.paths[i] for i in positions.tolist())
        return ImageFiles(self.root, picked, self.size, self.workers)

    def to_dict(self) -> dict:
        """Plain types only (loadable with torch.load(weights_only=True))."""
        return {"root": self.root, "paths": list(self.paths), "size": self.size, "workers": self.workers}

    @classmethod
    def from_dict(cls, d: dict) -> ImageFiles:
        return cls(d["root"], tuple(d["paths"]), d["size"], d["workers"])

    def batches(
        self,
        batch_size: int,
        augment: bool,
        generator: torch.Generator | None = None,
        pin: bool = False,
        resize: float = EVAL_RESIZE,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images (B, 3, size, size), their positions in this list) per batch; shuffled
        when a generator is given (which also seeds the workers' augmentation). Without
        augmentation the short side is resized to size * resize, then centre-cropped."""
        loader = torch.utils.data.DataLoader(
            _Decoded(self, augment, resize),
            batch_size=batch_size,
            shuffle=generator is not None,
            generator=generator,
            num_workers=self.workers,
            pin_memory=pin,
            persistent_workers=False,
        )
        yield from loader

    def check(self, batch_size: int = 64) -> None:
        """Open and decode every image (JPEGs in draft mode: at about the size used), in the
        worker processes; the first that cannot be read stops with one line naming it."""
        loader = torch.utils.data.DataLoader(
            _Checked(self), batch_size=batch_size, num_workers=self.workers, collate_fn=list
        )
        for problems in progress_iter(loader, f"check {self.root}", total=-(-len(self) // batch_size)):
            bad = next((p for p in problems if p), None)
            if bad:
                raise InputError(bad)

    def decode(self, batch_size: int = 256, resize: float = EVAL_RESIZE, label: str = "decode") -> torch.Tensor:
        """Every image at the held-out transform, as one uint8 tensor (N, 3, size, size)."""
        loader = self.batches(batch_size, augment=False, resize=resize)
        parts = [x for x, _ in progress_iter(loader, label, total=-(-len(self) // batch_size))]
        return torch.cat(parts) if parts else torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)


class _Decoded(torch.utils.data.Dataset):
    """One image file -> (uint8 (3, size, size), its position)."""

    def __init__(self, files: ImageFiles, augment: bool, resize: float) -> None:
        from torchvision import transforms as T

        self.files = files
        size = files.size
        if augment:
            self.transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.PILToTensor()])
        else:
            self.transform = T.Compose([T.Resize(round(size * resize)), T.CenterCrop(size), T.PILToTensor()])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with open_image(Path(self.files.root) / self.files.paths[i]) as img:
            return self.transform(img.convert("RGB")), i


def open_image(path: Path):
    """PIL's image at `path`, a decompression bomb (over MAX_PIXELS) refused as an error."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    return Image.open(path)


class _Checked(torch.utils.data.Dataset):
    """One image file -> "" if it decodes, else one line saying why not."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> str:
        from PIL import Image

        path = Path(self.files.root) / self.files.paths[i]
        try:
            with open_image(path) as img:
                img.draft("RGB", (self.files.size, self.files.size))
                img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            return f"{path}: not a readable image ({str(err).splitlines()[0] if str(err) else type(err).__name__}); remove or replace it"
        return ""


def as_tensor(x: torch.Tensor | ImageFiles) -> torch.Tensor:
    """uint8 images as one tensor: decoded from their files when they are files."""
    return x.decode() if isinstance(x, ImageFiles) else x


def list_files(folder: Path, classes: list[str]) -> tuple[list[str], torch.Tensor]:
    """Image files of the class sub-folders (paths relative to `folder`) and their labels,
    in torchvision ImageFolder's order and with its image extensions.

    Links are followed (a subset made of links is common), but a folder reached again (a link
    loop) is not walked twice, and an image reachable under two paths (a link from one class
    into another) stops with one line naming both: it would count twice, maybe as two classes."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    paths: list[str] = []
    labels: list[int] = []
    first_seen: dict[str, Path] = {}
    for label, name in enumerate(classes):
        for root, files in _walk_once(folder / name):
            for file in sorted(f for f in files if f.lower().endswith(IMG_EXTENSIONS)):
                path = root / file
                real = os.path.realpath(path)
                if real in first_seen:
                    raise InputError(
                        f"{path}: the same file as {first_seen[real]} (through a link); an image must appear once"
                    )
                first_seen[real] = path
                paths.append(str(path.relative_to(folder)))
                labels.append(label)
    return paths, torch.tensor(labels, dtype=torch.int64)


def _walk_once(top: Path) -> list[tuple[Path, list[str]]]:
    """(folder, file names) under `top`, links followed, each real folder once, sorted by path."""
    seen: set[str] = set()
    found = []
    for root, dirs, files in os.walk(top, followlinks=True):
        seen.add(os.path.realpath(root))
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) not in seen]
        found.append((Path(root), files))
    return sorted(found, key=lambda entry: str(entry[0]))
