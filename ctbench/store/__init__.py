"""Run files: one versioned JSON document per run (``results``), its schema as checks (``schema``), and text from
them made safe to show (``text``)."""
