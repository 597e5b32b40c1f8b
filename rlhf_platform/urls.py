from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from core.auth_views import ThrottledLoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("training.api.urls")),
    path("api/", include("labeling.api.urls")),
    path("api/", include("core.api.urls")),  # last: it ends with the JSON 404
    path("", include("training.urls")),
    path("", include("labeling.urls")),
    path("", include("demo.urls")),
]

handler500 = "core.outage.server_error_or_unavailable"
