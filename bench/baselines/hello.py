#!/usr/bin/env python3
"""Python wsgiref CGIHandler hello."""
from wsgiref.handlers import CGIHandler


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


CGIHandler().run(app)
