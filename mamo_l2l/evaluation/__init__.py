"""Layer 6, evaluation: metrics, the non-meta references, scoring of test tasks, catalogue
ranking and the ranking score (docs/architecture.md)."""
