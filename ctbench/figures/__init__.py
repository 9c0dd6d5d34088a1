"""Figures drawn from run files alone: declarative line plots and the helpers custom plots share (``plotting``),
case records as their rows and labels (``records``), the Pareto scatter (``pareto``), one colour and marker per
implementation (``palette``), and what a drawn figure shows, read back (``audit``)."""
