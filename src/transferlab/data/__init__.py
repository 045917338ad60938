"""Data sets, class splits and device-side batching."""
