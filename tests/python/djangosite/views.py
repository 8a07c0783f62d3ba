import hashlib
import json

from django.http import (FileResponse, HttpResponse, HttpResponseRedirect, JsonResponse,
                         StreamingHttpResponse)
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("hello from django", content_type="text/plain")


def hello(request, name):
    return HttpResponse(f"hello {name}", content_type="text/plain; charset=utf-8")


@csrf_exempt
def form(request):
    text = ",".join(f"{k}={v}" for k, v in sorted(request.POST.items()))
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


@csrf_exempt
def json_echo(request):
    data = json.loads(request.body)
    return JsonResponse({"sum": sum(data["numbers"]), "name": data["name"]})


def cookie_set(request):
    response = HttpResponse("set", content_type="text/plain")
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("size", "large")
    return response


def cookie_get(request):
    text = ",".join(f"{k}={v}" for k, v in sorted(request.COOKIES.items()))
    return HttpResponse(text, content_type="text/plain")


def session_count(request):
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]), content_type="text/plain")


def go_elsewhere(request):
    return HttpResponseRedirect("/hello/there")


def stream(request):
    n = int(request.GET.get("n", "3"))
    return StreamingHttpResponse((f"chunk {i}\n" for i in range(n)), content_type="text/plain")


def download(request):
    # FileResponse hands the open file to environ["wsgi.file_wrapper"].
    return FileResponse(open(request.GET["path"], "rb"), content_type="application/octet-stream")


@csrf_exempt
def upload(request):
    """Reads the body from wsgi.input in blocks, never whole."""
    digest = hashlib.sha256()
    size = 0
    while True:
        block = request.read(65536)
        if not block:
            break
        size += len(block)
        digest.update(block)
    return HttpResponse(f"{size} {digest.hexdigest()}", content_type="text/plain")


@csrf_exempt
def files(request):
    upload = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return HttpResponse(f"{upload.name} {upload.size} {digest.hexdigest()}", content_type="text/plain")


def boom(request):
    return 1 / 0
