"""The ASGI entry point, for an ASGI server; refuses the development key as wsgi.py does."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from cachesite.env import refuse_development_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cachesite.settings")
# Before any request is served: with DEBUG off the key must be a real one.
refuse_development_secret_key(debug=settings.DEBUG, secret_key=settings.SECRET_KEY)
application = get_asgi_application()
