"""The CLIFF+ annotator (`cliffhmr annotate`): photos -> pseudo ground truth in the SPIN/CLIFF npz
format, in resumable shards, refined by the full-frame fit or by fine-tuning the network (which
needs training's losses: this package sits above `train`)."""
