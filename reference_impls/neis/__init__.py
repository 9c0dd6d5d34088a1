"""Reference estimators of the ``neis`` task: vanilla IS, AIS-10 and AIS-100, and NEIS with three velocity fields."""
