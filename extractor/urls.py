from django.urls import path

from extractor.views import overview

app_name = "extractor"

urlpatterns = [
    path("", overview.overview, name="overview"),
]
