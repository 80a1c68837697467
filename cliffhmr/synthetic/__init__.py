"""People we generate and so know everything about: bodies in random or captured poses seen by
known cameras (`scenes`), for tests, benchmarks and training. Beside the inference path, never
imported by it."""
