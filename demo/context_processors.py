"""What every page shows of the demo: the demo language model's build, while it runs."""

from demo import lm_build


def demo_lm_build(request) -> dict:
    if not request.user.is_authenticated:
        return {}
    status = lm_build.read_status()
    if status is None or status.state == lm_build.State.READY:
        return {}
    return {"demo_lm_build": status}
