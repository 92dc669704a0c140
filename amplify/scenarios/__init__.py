"""Rare-event scenarios and agent variations: edit who is on the road, in 3D, and render it.

library.py  the templates (Euro NCAP / NHTSA names), their parameters and ranges, sampling
world.py    the 3D world of a window: a synthetic clip's own scene, or a ground-plane model
edit.py     an edit of the world's agents -> the painter's controls and the edited labels
"""
