"""The shared data loader: sources -> decode -> Lab cache -> splits -> torch / Keras adapters."""
