"""Plain WSGI apps for towergate's Python tests: each exercises one PEP 3333 rule."""

import io
import os
import sys
import threading

CLOSED = []


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


def environ_dump(environ, start_response):
    """One `key=repr(value)` line per str environ entry, sorted, and the wsgi flags."""
    lines = []
    for key in sorted(environ):
        value = environ[key]
        if isinstance(value, (str, bool, tuple)):
            lines.append(f"{key}={value!r}")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return ["\n".join(lines).encode("utf-8")]


def path_bytes(environ, start_response):
    """PATH_INFO back as the bytes it stands for (PEP 3333: latin-1 native strings)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [environ["PATH_INFO"].encode("latin-1")]


def raise_before(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("the app failed before its body")


def raise_after(environ, start_response):
    def body():
        yield b"partial"
        raise RuntimeError("the app failed after its first chunk")

    start_response("200 OK", [("Content-Type", "text/plain")])
    return body()


def write_then_iter(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"via-write ")
    return [b"+iter"]


def write_many(environ, start_response):
    """The old CGI-style app: everything through write(), many chunks, then an empty list."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(1000):
        write(b"%d," % i)
    return []


def exc_info_replaces(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("changed its mind")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("X-Replaced", "yes")],
                       sys.exc_info())
    return [b"replaced"]


def exc_info_after_output(environ, start_response):
    def body():
        yield b"first"
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"

    start_response("200 OK", [("Content-Type", "text/plain")])
    return body()


def not_bytes(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str, not bytes"]


def hop_by_hop(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
    return [b"never sent"]


class Tracked:
    """A result that records its close() in CLOSED under its name."""

    def __init__(self, name, chunks):
        self.name = name
        self.chunks = chunks

    def __iter__(self):
        for chunk in self.chunks:
            yield chunk

    def close(self):
        CLOSED.append(self.name)


def tracked(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ.get("QUERY_STRING", ""), [b"a", b"b"])


def endless(environ, start_response):
    """Streams until the client goes away; close() records it."""
    def chunks():
        while True:
            yield b"x" * 65536

    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Tracked(environ.get("QUERY_STRING", ""), chunks())


def endless_write(environ, start_response):
    """Streams through write() until a write fails (the client went away or stopped
    reading), then records it in CLOSED."""
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    try:
        while True:
            write(b"x" * 65536)
    finally:
        CLOSED.append(environ.get("QUERY_STRING", ""))


RELEASE = threading.Event()


def held(environ, start_response):
    """Holds its output until a request to /release: at /before before its head, at /after
    after its first chunk. Each result records its close()."""
    path = environ["PATH_INFO"]
    if path == "/release":
        RELEASE.set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released"]
    if path == "/before":
        RELEASE.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("before", [b"late"])

    def chunks():
        yield b"first"
        RELEASE.wait(30)
        yield b"late"

    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("after", chunks())


def closed(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [",".join(CLOSED).encode()]


def input_methods(environ, start_response):
    """readline, readline(n), read(n), readlines, iteration and read() on wsgi.input."""
    stream = environ["wsgi.input"]
    parts = [
        stream.readline(),
        stream.readline(3),
        stream.read(2),
        b"|".join(stream.readlines(1)),
    ]
    parts.append(b"|".join(line for line in stream))
    parts.append(stream.read())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"/".join(parts)]


PER_THREAD = threading.local()


def thread_local_count(environ, start_response):
    """How many requests this thread served, kept in threading.local (as Django keeps its
    database connections): it must survive from one request to the next."""
    PER_THREAD.count = getattr(PER_THREAD, "count", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % PER_THREAD.count]


def read_content_length(environ, start_response):
    """One read(CONTENT_LENGTH), as simple apps do: it must return the whole body."""
    stream = environ["wsgi.input"]
    body = stream.read(int(environ["CONTENT_LENGTH"]))
    rest = stream.read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d %s" % (len(body), len(rest), body[::50000])]


def count_input(environ, start_response):
    """The body's size, read in blocks of 64 KiB, and whether CONTENT_LENGTH was set."""
    stream = environ["wsgi.input"]
    size = 0
    while True:
        block = stream.read(65536)
        if not block:
            break
        size += len(block)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{size} {environ.get('CONTENT_LENGTH', '-')}".encode()]


def file_wrapper(environ, start_response):
    """The file named by the query through wsgi.file_wrapper, from byte 3 on."""
    f = open(environ["QUERY_STRING"], "rb")
    f.seek(3)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 4096)


def write_then_file(environ, start_response):
    """write() output, then a file result: the written bytes come first."""
    f = open(environ["QUERY_STRING"], "rb")
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    write(b"written:")
    return environ["wsgi.file_wrapper"](f)


def file_wrapper_bytesio(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO"), 4)


def log_errors(environ, start_response):
    errors = environ["wsgi.errors"]
    errors.write("first line\nsecond ")
    errors.writelines(["line\n", "unfinished"])
    errors.flush()
    # Written out by the server when the request is over.
    errors.write("no newline, no flush")
    start_response("204 No Content", [])
    return []


def generator(environ, start_response):
    n = int(environ.get("QUERY_STRING") or "0")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"y" * 65536
    return (block for _ in range(n))


def distinct_chunks(environ, start_response):
    """QUERY_STRING chunks of 64 KiB, each a new bytes object."""
    n = int(environ.get("QUERY_STRING") or "0")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (bytes([i % 256]) * 65536 for i in range(n))


def process(environ, start_response):
    if environ["PATH_INFO"] == "/exit":
        os._exit(3)  # a crash: no answer, no clean-up
    # Which process answered, and whether it knows others run the same app.
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pid=%d multiprocess=%r" % (os.getpid(), environ["wsgi.multiprocess"])]


def chatty(environ, start_response):
    # 256 KiB on standard output, more than a pipe holds, then an answer.
    for _ in range(256):
        print("x" * 1023, flush=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"printed"]


TOGETHER = threading.Barrier(4, timeout=20)


def together(environ, start_response):
    """Answers "together" once four requests are in the app at once, "alone" if they never
    are within 20 s: each waits for the others."""
    try:
        TOGETHER.wait()
        body = b"together"
    except threading.BrokenBarrierError:
        body = b"alone"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def spin(environ, start_response):
    """Computes for a while, holding the GIL (and the CPU) but for Python's switches."""
    total = sum(i * i for i in range(int(environ.get("QUERY_STRING") or "100000")))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(total).encode()]
