"""A module that takes a minute to import: a towergate worker is still importing it."""

import time

time.sleep(60)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"imported at last"]
