"""Task definitions, one package per task; each exposes ``TASK``, a ``ctbench.Task``. Extra roots named by
``CTBENCH_PATH`` add their ``suites/`` folders here (``ctbench.catalog.roots``)."""

from ctbench.catalog.roots import extend

__path__ = extend(__path__, "suites")
