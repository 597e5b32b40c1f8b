from django import template

register = template.Library()


@register.filter
def get_item(mapping: dict, key: str):
    """``{{ row|get_item:"reward/heldout_accuracy" }}``: metric names contain slashes."""
    return mapping.get(key)
