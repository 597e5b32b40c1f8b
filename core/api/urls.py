from django.urls import path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from core.api import views

# Included under /api/ after every app's API: it ends with the catch-all JSON 404.
urlpatterns = [
    path("schema/", views.SchemaView.as_view(), name="api-schema"),
    # the split view serves its script from ?script=, not inline: the CSP allows no inline
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    # Anything else under /api/ is a JSON 404, not Django's HTML page.
    re_path(r"^[\s\S]*$", views.api_not_found),  # any path, newlines included
]
