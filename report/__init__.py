"""The static HTML report of ctbench results: leaderboards, task pages with plots, compare, environment."""

from report.build import Built, build_report

__all__ = ["Built", "build_report"]
