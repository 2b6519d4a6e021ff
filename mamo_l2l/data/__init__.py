"""Data side: readers -> features -> protocol -> tasks -> batches, plus fetching and caching."""
