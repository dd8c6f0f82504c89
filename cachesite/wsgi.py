"""The WSGI entry point: gunicorn (`make serve`) and runserver load `application` here."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from cachesite.env import refuse_development_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cachesite.settings")
# Before any request is served: with DEBUG off the key must be a real one.
refuse_development_secret_key(debug=settings.DEBUG, secret_key=settings.SECRET_KEY)
application = get_wsgi_application()
