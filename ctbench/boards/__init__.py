"""Leaderboards from run files alone: the cases table and boards (``table``), ranks and Pareto layers (``ranking``),
boards in reading order with their titles (``groups``), cells (``cells``) and CSV (``spreadsheet``). ``ctbench show``
and the report both read boards from here."""
