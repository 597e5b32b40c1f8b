"""The demo's accounts. They are for a development machine: anyone who reads this file
knows their passwords."""

DEMO_USERS = [
    # username, password, is_staff
    ("admin", "admin", True),
    ("annotator", "annotator", False),
]
