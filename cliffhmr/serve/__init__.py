"""`cliffhmr serve`: a local web server, a REST API under /v1 and a browser page at /.

work (the bounded queue in front of one prediction thread, and the server-owned result folders),
jobs (videos on that thread, with progress), app (the FastAPI application), command (the CLI's
glue: the socket, uvicorn). FastAPI and uvicorn
come with the `serve` extra and are imported only by app and command.
"""
