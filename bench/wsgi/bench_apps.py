"""Plain WSGI apps of bench/compare.sh section 7 and bench/ab_wsgi.sh (no Flask import:
the RSS rows must not pay for it)."""

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]

def upload(environ, start_response):
    stream, size = environ["wsgi.input"], 0
    while True:
        block = stream.read(65536)
        if not block:
            break
        size += len(block)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(size).encode()]

def download(environ, start_response):
    block, n = b"x" * 65536, int(environ.get("QUERY_STRING") or "0") // 65536
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (block for _ in range(n))
