"""Training and evaluation data in the SPIN/CLIFF npz format: its joint sets, reading and checking
files, augmentation, datasets and the sample stream, and the commands that write such files
(`annotate`: pseudo ground truth from photos; `convert`: official downloads). Beside the inference
path, never imported by it."""
