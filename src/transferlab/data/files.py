"""Large images read from their files while training (`data.storage: files`).

A folder data set at 224 px does not fit in memory as one tensor (ImageNet's training set
would be 193 GB of uint8). Here the prepared data set holds the file list instead, and
every epoch decodes the images in DataLoader worker processes: training images with a
random resized crop and a flip, held-out images resized and centre-cropped. Batches leave
the workers as uint8 NCHW tensors, so the trainer normalises them on its device as it
does for the in-memory tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

# Held-out images: resize the short side to size / 0.875, then the centre crop (the usual
# ImageNet evaluation: 256 -> 224).
EVAL_RESIZE = 1 / 0.875


@dataclass(frozen=True)
class ImageFiles:
    """Image files (paths relative to `root`), decoded to size x size RGB on demand."""

    root: str
    paths: tuple[str, ...]
    size: int
    workers: int = 4

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> "ImageFiles":
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
    def from_dict(cls, d: dict) -> "ImageFiles":
        return cls(d["root"], tuple(d["paths"]), d["size"], d["workers"])

    def batches(self, batch_size: int, augment: bool, generator: torch.Generator | None = None, pin: bool = False,
                resize: float = EVAL_RESIZE) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
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

    def decode(self, batch_size: int = 256, resize: float = EVAL_RESIZE, label: str = "decode") -> torch.Tensor:
        """Every image at the held-out transform, as one uint8 tensor (N, 3, size, size)."""
        from transferlab.progress import progress_iter

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
        from PIL import Image

        with Image.open(Path(self.files.root) / self.files.paths[i]) as img:
            return self.transform(img.convert("RGB")), i


def as_tensor(x: "torch.Tensor | ImageFiles") -> torch.Tensor:
    """uint8 images as one tensor: decoded from their files when they are files."""
    return x.decode() if isinstance(x, ImageFiles) else x


def list_files(folder: Path, classes: list[str]) -> tuple[list[str], torch.Tensor]:
    """Image files of the class sub-folders (paths relative to `folder`) and their labels,
    in torchvision ImageFolder's order and with its image extensions."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    samples = make_dataset(str(folder), {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS)
    return [str(Path(p).relative_to(folder)) for p, _ in samples], torch.tensor([y for _, y in samples], dtype=torch.int64)
