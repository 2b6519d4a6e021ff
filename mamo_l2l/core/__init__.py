"""Layer 1, core: what every other layer uses and that needs nothing of the project: the error
type, the run configuration, checksums, progress and logging, the plugin importer and the version
(docs/architecture.md)."""
