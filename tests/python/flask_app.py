"""The Flask app of towergate's Python tests (tests/python_flask.rs): one route per
behaviour the tests check through a real hyper server."""

import hashlib
import json
import time

from flask import Flask, Response, redirect, request, send_file, session, stream_with_context

app = Flask(__name__)
app.secret_key = "towergate tests only"


@app.get("/")
def index():
    return "hello from flask"


@app.get("/hello/<name>")
def hello(name):
    return f"hello {name}"


@app.post("/form")
def form():
    return ",".join(f"{k}={v}" for k, v in sorted(request.form.items()))


@app.post("/json")
def json_echo():
    data = request.get_json()
    return {"sum": sum(data["numbers"]), "name": data["name"]}


@app.get("/cookie/set")
def cookie_set():
    response = Response("set")
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("size", "large")
    return response


@app.get("/cookie/get")
def cookie_get():
    return ",".join(f"{k}={v}" for k, v in sorted(request.cookies.items()))


@app.get("/session")
def session_count():
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


@app.get("/redirect")
def go_elsewhere():
    return redirect("/hello/there")


@app.get("/stream")
def stream():
    n = request.args.get("n", 3, type=int)

    def chunks():
        for i in range(n):
            yield f"chunk {i}\n"

    return Response(stream_with_context(chunks()), mimetype="text/plain")


@app.get("/download")
def download():
    # send_file hands the open file to environ["wsgi.file_wrapper"].
    return send_file(request.args["path"], mimetype="application/octet-stream")


@app.post("/upload")
def upload():
    """Reads the body from wsgi.input in blocks, never whole."""
    digest = hashlib.sha256()
    size = 0
    stream = request.stream
    while True:
        block = stream.read(65536)
        if not block:
            break
        size += len(block)
        digest.update(block)
    return f"{size} {digest.hexdigest()}"


@app.post("/files")
def files():
    upload = request.files["file"]
    data = upload.read()
    return f"{upload.filename} {len(data)} {hashlib.sha256(data).hexdigest()}"


@app.get("/boom")
def boom():
    return 1 / 0


@app.get("/slow")
def slow():
    time.sleep(request.args.get("s", 0.2, type=float))
    return "slept"


@app.get("/environ")
def environ():
    keys = ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "SERVER_PROTOCOL"]
    out = {k: request.environ.get(k) for k in keys}
    for k in ["wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.url_scheme",
              "wsgi.version", "wsgi.input_terminated"]:
        out[k] = request.environ.get(k)
    return Response(json.dumps(out, sort_keys=True), mimetype="application/json")
