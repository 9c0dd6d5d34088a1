"""Reference implementations, one package per task; a submission has the same shape."""
