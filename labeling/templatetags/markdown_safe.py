import markdown as md
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def markdown_safe(text: str) -> str:
    """Markdown to HTML, then sanitised: instructions are written by staff but shown to
    everyone, so no script, handler attribute or style survives."""
    return mark_safe(nh3.clean(md.markdown(text or "", extensions=["extra"])))
