"""Reference estimators of the ``neis`` task: vanilla IS, AIS, and NEIS with three velocity fields."""
