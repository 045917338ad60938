"""The binary-partition study: A' nets with binary heads on A, fine-tuned on B."""
