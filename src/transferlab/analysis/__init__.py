"""Per-layer feature analysis without training a net per layer: linear probes, CKA, and
transferability estimates (LogME, LEEP, H-score)."""

DRAWS_FILE = "draws.npz"  # in the feature cache: the rows of B's training images each data draw holds
