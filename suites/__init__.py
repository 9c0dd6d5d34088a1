"""Task definitions, one package per task; each exposes ``TASK``, a ``ctbench.Task``. Extra roots named by
``CTBENCH_PATH`` add their ``suites/`` folders here (``ctbench.roots``)."""

from ctbench.roots import extend

__path__ = extend(__path__, "suites")
