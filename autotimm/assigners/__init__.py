"""Target assignment: which feature-map points learn which ground-truth box."""

from autotimm.assigners.fcos import FCOSAssigner, default_regress_ranges, make_points

__all__ = ["FCOSAssigner", "default_regress_ranges", "make_points"]
