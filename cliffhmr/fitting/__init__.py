"""Fitting: the body model fitted to 2D keypoints in the full frame."""
