"""`ecgpipe scenario run`'s entry points, where lab.cli.main imports them from: running one
variant (lab.scenario.variant), compressing one (lab.scenario.config) and the summary
(lab.scenario.outputs). New code imports from those modules."""

from __future__ import annotations

from lab.scenario.config import with_chunk, with_devices
from lab.scenario.outputs import summary
from lab.scenario.variant import run_variant

__all__ = ["run_variant", "summary", "with_chunk", "with_devices"]
