"""Target assignment: which feature-map points learn which ground-truth box."""

from autotimm.assigners.fcos import FCOSAssigner, default_regress_ranges
from autotimm.assigners.simota import SimOTAAssigner

__all__ = ["FCOSAssigner", "SimOTAAssigner", "default_regress_ranges"]
