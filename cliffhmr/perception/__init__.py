"""From pixels to what the later stages read: people's boxes (`detect`), their 2D keypoints
(`blazepose`, `keypoint_files` for keypoints made elsewhere, `leftright`), and the network crops
(`crop`). Imports `geometry` and the base modules only."""
