import pytest


@pytest.fixture(scope="session")
def anny_body():
    """The default Anny body, built once per test session (the very first build on a machine
    takes about 90 s while Anny writes its caches). Shared: copy it before changing it."""
    from cliffhmr.body import load_body_model

    return load_body_model("anny")
