"""Reference implementations, one package per task; a submission has the same shape. Extra roots named by
``CTBENCH_PATH`` add their ``reference_impls/`` folders here (``ctbench.catalog.roots``)."""

from ctbench.catalog.roots import extend

__path__ = extend(__path__, "reference_impls")
