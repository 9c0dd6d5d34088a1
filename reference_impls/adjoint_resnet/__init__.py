"""Reference gradient methods for the deep residual stage of ``adjoint_resnet``."""
