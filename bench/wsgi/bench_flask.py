"""The Flask hello of bench/compare.sh section 7 and bench/ab_wsgi.sh."""
from flask import Flask

app = Flask(__name__)

@app.get("/")
def hello():
    return "Hello, world!"
