"""Deep-ResNet fine-tuning with the memory-free discrete adjoint (Sander, Ablin, Peyre 2022)."""

from suites.adjoint_resnet.task import AdjointResNet

TASK = AdjointResNet()
