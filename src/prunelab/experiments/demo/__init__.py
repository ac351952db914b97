"""The demo: the bundled ``demo.toml`` sweep (``run``) plus its headline page (``section``)."""
