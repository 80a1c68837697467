"""Evaluation: the paper's protocol and metrics (`cliffhmr eval`). Beside the inference path,
never imported by it."""
