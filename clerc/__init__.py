"""CLERC harness: multimodal contrastive learning across cardiac diagnostics."""

__version__ = "0.1.0"
