"""Running cases: expansion (``cases``), settings, the runner and its executors (``executors``, ``ray_executor``),
one contained case process (``launch``, ``template``, ``worker``), the engine's side of a case (``protocol``,
``process``), the journal and records, memory calibration (``calibrate``), and in-process access for asv and
pytest-benchmark (``smoke``)."""
