"""Shared training loops, one per framework (torch, Keras), and the options they share."""
