"""Run files: one versioned JSON document per run (``results.Run``) holding one ``record.Record`` per case, its
schema as checks (``schema``), bounded JSON files (``files``: written atomically, read without trusting them), and
text from them made safe to show (``text``)."""
