"""The Flask app of examples/wsgi_flask.rs, mounted at /flask/ beside Rust routes."""

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/")
def index():
    return f"hello from Flask, mounted at {request.script_root or '/'}\n"


@app.get("/hello/<name>")
def hello(name):
    return f"hello {name}, from Flask\n"


@app.post("/echo")
def echo():
    return Response(request.get_data(), mimetype=request.mimetype or "application/octet-stream")


@app.get("/stream")
def stream():
    n = request.args.get("n", 3, type=int)
    return Response((f"line {i}\n" for i in range(n)), mimetype="text/plain")
