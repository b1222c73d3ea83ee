"""The nemesis: fault values, the link proxies that apply them, the fault tracker, process faults."""
