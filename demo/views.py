"""The demo's one endpoint: how the background build of the demo language model goes."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.urls import reverse

from demo import lm_build


@login_required
def demo_lm_status(request):
    """``{state, fraction, error, url}``: state is queued, building, ready, failed, or null
    when no build was queued; url is the demo-lm annotator page once it is ready."""
    status = lm_build.read_status()
    if status is None:
        return JsonResponse({"state": None, "fraction": 0.0, "error": "", "url": None})
    ready = status.state == lm_build.State.READY
    url = reverse("labeling:annotate", args=[lm_build.SLUG]) if ready else None
    body = {"state": status.state, "fraction": status.fraction, "error": status.error}
    return JsonResponse({**body, "url": url})
