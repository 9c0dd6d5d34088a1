"""Figures drawn from run files alone: declarative line plots and the helpers custom plots share (``plotting``),
the Pareto scatter (``pareto``), one colour and marker per implementation (``palette``)."""
