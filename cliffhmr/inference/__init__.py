"""Inference: one photo or video to people, and their files (npz, images, meshes, animations)."""
