"""Training: the CLIFF network on npz datasets (`cliffhmr train`) and its losses. Beside the
inference path, never imported by it."""
