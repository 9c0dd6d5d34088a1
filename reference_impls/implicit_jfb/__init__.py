"""Reference backward methods for implicit networks (``implicit_jfb``)."""
