"""Layer 8, training: a run's parts (run.py), the epoch loops (fit.py, supervised.py), the
choice-prior weight, checkpoints, run files, run identity, fault handling and torchrun
(docs/architecture.md)."""
