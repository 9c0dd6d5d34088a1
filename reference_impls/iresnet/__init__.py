"""Reference log-determinant methods for invertible residual blocks (``iresnet``)."""
