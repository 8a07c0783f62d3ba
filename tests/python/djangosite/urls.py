from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("hello/<str:name>", views.hello),
    path("form", views.form),
    path("json", views.json_echo),
    path("cookie/set", views.cookie_set),
    path("cookie/get", views.cookie_get),
    path("session", views.session_count),
    path("redirect", views.go_elsewhere),
    path("stream", views.stream),
    path("download", views.download),
    path("upload", views.upload),
    path("files", views.files),
    path("boom", views.boom),
]
