"""The nemesis: fault values, the link proxies that apply network faults, the fault tracker, and process faults (kill, stop, resume) on a running stack."""
