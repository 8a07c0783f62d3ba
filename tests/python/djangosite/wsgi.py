"""The WSGI entry point of the test project: `djangosite.wsgi:application`.

A project usually sets DJANGO_SETTINGS_MODULE in os.environ here; that would change the
environment of the process embedding Python (the test process), so the settings are
passed to `settings.configure` instead.
"""

from django.conf import settings

from . import settings as site_settings

if not settings.configured:
    settings.configure(**{k: getattr(site_settings, k) for k in dir(site_settings) if k.isupper()})

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
