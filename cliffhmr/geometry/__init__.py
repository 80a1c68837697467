"""Geometry on tensors, below everything that sees images or bodies: rotations, the camera and the
crop camera, boxes around points, similarity alignment. Imports nothing of the package but `errors`."""
