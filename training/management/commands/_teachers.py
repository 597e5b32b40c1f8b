"""Shared command-line handling of synthetic teachers."""

from django.core.management.base import CommandError

from training.ml.teachers import TEACHER_NAMES, make_teacher


def add_teacher_arguments(parser, *, required: bool) -> None:
    parser.add_argument(
        "--teacher", choices=TEACHER_NAMES, required=required, help="Synthetic teacher (B-Pref)."
    )
    parser.add_argument(
        "--teacher-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Teacher parameter: beta, gamma, epsilon, equal_threshold, skip_threshold.",
    )


def teacher_from_options(options):
    if not options["teacher"]:
        return None
    params = {}
    for text in options["teacher_param"]:
        name, _, value = text.partition("=")
        try:
            params[name] = float(value)
        except ValueError:
            raise CommandError(f"--teacher-param {text!r}: expected NAME=NUMBER.") from None
    try:
        return make_teacher(options["teacher"], **params)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
