"""batchgate: a self-hosted Batch API for LLMs."""

__version__ = "0.1.0"
