"""Large images read from their files while training (`data.storage: files`).

A folder data set at 224 px does not fit in memory as one tensor (ImageNet's training set
would be 193 GB of uint8). Here the prepared data set holds the file list instead, and
every epoch decodes the images in DataLoader worker processes: training images with a
random resized crop and a flip, held-out images resized and centre-cropped. Batches leave
the workers as uint8 NCHW tensors, so the trainer normalises them on its device as it
does for the in-memory tensors.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
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


def file_digest(data: bytes) -> str:
    """What an image file's bytes are recorded as at `prepare` and checked against when read."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file; anything else (a FIFO, a device, a socket) is refused
    without waiting on it (O_NONBLOCK: opening a FIFO with no writer would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file; image folders hold regular files only")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ImageFiles:
    """Image files (paths relative to `root`), decoded to size x size RGB on demand; each
    file's digest at `prepare` (a file changed, truncated or replaced since stops with one line)."""

    root: str
    paths: tuple[str, ...]
    size: int
    digests: tuple[str, ...] = ()
    workers: int = 0  # how many decoding processes: a setting of this machine, not of the data (not saved)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> ImageFiles:
        """The files at `index`: a slice, a bool mask or a tensor/list of positions."""
        if isinstance(index, slice):
            positions = list(range(len(self.paths)))[index]
        else:
            index = torch.as_tensor(index)
            positions = (torch.nonzero(index).flatten() if index.dtype == torch.bool else index.flatten()).tolist()
        picked = tuple(self.paths[i] for i in positions)
        digests = tuple(self.digests[i] for i in positions) if self.digests else ()
        return ImageFiles(self.root, picked, self.size, digests, self.workers)

    def with_workers(self, workers: int) -> ImageFiles:
        return ImageFiles(self.root, self.paths, self.size, self.digests, workers)

    def to_dict(self) -> dict:
        """Plain types only (loadable with torch.load(weights_only=True)); not the workers."""
        return {"root": self.root, "paths": list(self.paths), "size": self.size, "digests": list(self.digests)}

    @classmethod
    def from_dict(cls, d: dict) -> ImageFiles:
        return cls(d["root"], tuple(d["paths"]), d["size"], tuple(d.get("digests", ())))

    def read(self, i: int) -> bytes:
        """The bytes of file i, checked against its digest at `prepare`."""
        path = Path(self.root) / self.paths[i]
        data = read_regular(path)
        if self.digests and file_digest(data) != self.digests[i]:
            raise InputError(f"{path}: changed since `prepare` (other bytes than it recorded); run `prepare` again")
        return data

    def verify(self) -> None:
        """Every file still holds the bytes `prepare` recorded (one line naming the first that does not)."""
        for i in range(len(self.paths)):
            self.read(i)

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
        try:
            yield from loader
        except InputError as err:  # from a worker: torch re-raises it with the worker's traceback in the text
            raise InputError(
                str(err).strip().splitlines()[-1].removeprefix("transferlab.errors.InputError: ")
            ) from None

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
        data = self.files.read(i)
        try:
            with open_image(io.BytesIO(data)) as img:
                return self.transform(img.convert("RGB")), i
        except (OSError, SyntaxError, ValueError) as err:
            raise InputError(f"{Path(self.files.root) / self.files.paths[i]}: not a readable image ({err})") from None


def open_image(source):
    """PIL's image of `source` (a path or a file object), a decompression bomb (over
    MAX_PIXELS) refused as an error."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    return Image.open(source)


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
            with open_image(io.BytesIO(self.files.read(i))) as img:
                img.draft("RGB", (self.files.size, self.files.size))
                img.load()
        except InputError as err:
            return str(err)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            return f"{path}: not a readable image ({str(err).splitlines()[0] if str(err) else type(err).__name__}); remove or replace it"
        return ""


def as_tensor(x: torch.Tensor | ImageFiles) -> torch.Tensor:
    """uint8 images as one tensor: decoded from their files when they are files."""
    return x.decode() if isinstance(x, ImageFiles) else x


def list_files(
    folder: Path, classes: list[str], outside_links: bool = False
) -> tuple[list[str], torch.Tensor, list[str]]:
    """Image files of the class sub-folders (paths relative to `folder`), their labels and
    digests, in torchvision ImageFolder's order and with its image extensions.

    Only regular files are read (a FIFO, device or socket named like an image stops with one
    line). Links are followed inside the folder (a subset made of links is common); a link
    to a file outside it is refused unless `outside_links` (data.outside_links): an image
    the user did not put in the folder would be copied into the prepared data set, which
    others may read. A folder reached again (a link loop) is not walked twice; one file
    under two paths (a symbolic or hard link) or two files with the same bytes stop with one
    line naming both: the image would count twice, maybe under two classes."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    top = os.path.realpath(folder)
    paths: list[str] = []
    labels: list[int] = []
    digests: list[str] = []
    by_inode: dict[tuple[int, int], Path] = {}
    by_bytes: dict[str, Path] = {}
    for label, name in enumerate(classes):
        for root, files in _walk_once(folder / name):
            for file in sorted(f for f in files if f.lower().endswith(IMG_EXTENSIONS)):
                path = root / file
                if not outside_links and os.path.commonpath([top, os.path.realpath(path)]) != top:
                    raise InputError(
                        f"{path}: a link to {os.path.realpath(path)}, outside {folder}; data.outside_links: true allows it"
                    )
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    raise InputError(f"{path}: not a regular file; image folders hold regular files only")
                if (st.st_dev, st.st_ino) in by_inode:
                    raise InputError(
                        f"{path}: the same file as {by_inode[st.st_dev, st.st_ino]} (a link); an image must appear once"
                    )
                digest = file_digest(read_regular(path))
                if digest in by_bytes:
                    raise InputError(f"{path}: the same bytes as {by_bytes[digest]}; an image must appear once")
                by_inode[st.st_dev, st.st_ino], by_bytes[digest] = path, path
                paths.append(str(path.relative_to(folder)))
                labels.append(label)
                digests.append(digest)
    return paths, torch.tensor(labels, dtype=torch.int64), digests


def _walk_once(top: Path) -> list[tuple[Path, list[str]]]:
    """(folder, file names) under `top`, links followed, each real folder once, sorted by path."""
    seen: set[str] = set()
    found = []
    for root, dirs, files in os.walk(top, followlinks=True):
        seen.add(os.path.realpath(root))
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) not in seen]
        found.append((Path(root), files))
    return sorted(found, key=lambda entry: str(entry[0]))
