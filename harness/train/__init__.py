"""Shared training loops: the torch trainer and its multi-process helpers."""
