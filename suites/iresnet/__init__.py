"""Invertible residual networks and their log-determinant estimators (Behrmann et al. 2019; Chen et al. 2019)."""

from suites.iresnet.task import IResNetTask

TASK = IResNetTask()
