"""Where tasks and implementations come from: discovery through the ``ctbench.tasks`` entry points and
``CTBENCH_PATH`` folders (``registry``, ``roots``), a task's description as plain JSON (``describe``), a submission's
spec resolved in its own sandboxed process (``resolver``)."""
