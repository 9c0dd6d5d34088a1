"""What keeps a case from reaching what it must not: the bubblewrap sandbox (``sandbox``), who belongs to a case
and ending them (``containment``, ``procfs``, ``cgroup``, ``lifetime``), the memory it holds (``footprint``), its
channel to the runner (``channel``) and the runner's outside view of its step (``outside``)."""
