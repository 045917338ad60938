"""Per-layer feature analysis without training a net per layer: linear probes, CKA, and
transferability estimates (LogME, LEEP, H-score)."""
