"""A run's history: typed events, the loaders that read them from a state dir, fault windows and the broker's counters."""
