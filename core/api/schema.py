"""OpenAPI post-processing: document the error answers every operation can give.

Views document their own success answers and the errors particular to them; these are
the ones any call can meet (no or a bad token, no access, a missing object, bad input, the
database down), written once here so that the schema says what clients really get.
"""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}
INVALID = {
    "type": "object",
    "additionalProperties": True,
    "description": "{'detail': message}, or {field: [messages]} for invalid fields.",
}
COMMON = {
    "401": ("Not authenticated: no token, or an invalid one.", ERROR),
    "403": ("Not allowed for you.", ERROR),
    "404": ("No such object that you may see.", ERROR),
    "503": ("The database is unavailable; retry after Retry-After seconds.", ERROR),
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}


def document_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS['POSTPROCESSING_HOOKS'])."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            answers = dict(COMMON)
            if operation.get("requestBody") or any(
                p.get("in") == "query" for p in operation.get("parameters", [])
            ):
                answers["400"] = ("Invalid input.", INVALID)
            if not operation.get("security") or {} in operation["security"]:
                answers["429"] = ("Too many attempts; retry after Retry-After seconds.", ERROR)
            if "400" in responses:  # a view's own 400 may also be a field-error body
                responses["400"]["content"] = {"application/json": {"schema": INVALID}}
            for code, (description, schema) in answers.items():
                if code in responses:
                    continue
                responses[code] = {
                    "description": description,
                    "content": {"application/json": {"schema": schema}},
                }
                if code in ("429", "503"):
                    responses[code]["headers"] = RETRY_AFTER
    return result
