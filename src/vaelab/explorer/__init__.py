"""`vaelab explore RUN`: an interactive latent-space explorer in the browser (see server.py)."""
from .server import Explorer, make_server, serve

__all__ = ["Explorer", "make_server", "serve"]
