"""Settings of the minimal Django project of towergate's Python tests: no database,
sessions in signed cookies."""

SECRET_KEY = "towergate tests only"
DEBUG = False
# Exceptions leave Django, so the server answers 500 and logs the traceback.
DEBUG_PROPAGATE_EXCEPTIONS = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "djangosite.urls"
INSTALLED_APPS = []
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES = {}
USE_TZ = True
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
