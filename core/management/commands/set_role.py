from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core import roles


class Command(BaseCommand):
    help = (
        "Give a user a role: admin (superuser), manager (projects, imports, members, "
        "exports, training), reviewer (sees everything, exports, changes nothing) or "
        "annotator (judges what they are assigned). Without ROLE, print the user's role."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", nargs="?", choices=roles.ROLES)

    def handle(self, *args, username, role, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user {username!r}; create it first (manage.py createsuperuser, or the admin)."
            )
        if role is not None:
            roles.set_role(user, role)
        self.stdout.write(f"{username}: {roles.role_of(user)}")
