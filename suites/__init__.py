"""Task definitions, one package per task; each exposes ``task``, a ``ctbench.Task``."""
