"""Scripts and utilities for the tests that run the ``mocme`` command in subprocesses."""
