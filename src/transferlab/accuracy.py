"""Mean per-class accuracy beside top-1 where a test set's classes are unbalanced (Caltech-101's
convention: its classes hold 31 to 800 images, and top-1 over all images mostly measures the
largest classes). One definition for the trainer and the probes: the mean, over the classes
present in the test set, of the share of each class's images classified correctly."""

from __future__ import annotations

import numpy as np

MEAN_CLASS = "mean_class_top1"  # a run's mean per-class accuracy, at the evaluations of its reported top-1


def unbalanced(labels) -> bool:
    """Whether the classes present in `labels` (integers) hold different numbers of images."""
    counts = np.bincount(np.asarray(labels))
    present = counts[counts > 0]
    return bool(len(present)) and bool(present.min() != present.max())


def mean_class_top1(hits, labels) -> float:
    """Mean per-class accuracy of per-image hits (booleans) with their labels (integers)."""
    hits, labels = np.asarray(hits, dtype=float), np.asarray(labels)
    counts = np.bincount(labels)
    correct = np.bincount(labels, weights=hits, minlength=len(counts))
    present = counts > 0
    return float(np.mean(correct[present] / counts[present]))
