"""Django settings. Everything that differs between machines comes from the environment.

Switches: DATABASE_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND, SECRET_KEY, DEBUG,
ALLOWED_HOSTS (comma-separated), MEDIA_ROOT, DATA_DIR (where embedded servers live).
With DEBUG off (the default) the app refuses to start without SECRET_KEY and ALLOWED_HOSTS.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / ".data"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1 or 0.")


DEBUG = env_bool("DEBUG", default=False)

# Environments render frames for clips off-screen: no display, no sound (pygame's SDL).
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
SECRET_KEY_MIN_LENGTH = 50  # and 5 distinct characters: what `check --deploy` asks
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=1 for development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
elif not DEBUG and (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured(
        f"SECRET_KEY is too short or too plain: use at least {SECRET_KEY_MIN_LENGTH} random "
        "characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is not set. Set it to the comma-separated host names this "
            "site is served under, or set DEBUG=1 for development."
        )
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "core",
    "labeling",
    "training",
    "demo",
]

MIDDLEWARE = [
    "core.middleware.RequestBodyLimitMiddleware",  # first: before anything reads a body
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.PrivateByDefaultMiddleware",  # after auth: it asks who is signed in
    "core.csp.CSPMiddleware",  # django-csp's, the site policy built once
]
API_PATH_PREFIX = "/api/"  # rlhf_platform/urls.py mounts every API under it

ROOT_URLCONF = "rlhf_platform.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "demo.context_processors.demo_lm_build",
            ],
        },
    },
]

WSGI_APPLICATION = "rlhf_platform.wsgi.application"

# --- Database: DATABASE_URL, or an embedded PostgreSQL under DATA_DIR ----------------------
if os.environ.get("DATABASE_URL"):
    DATABASE_URL = os.environ["DATABASE_URL"]
else:
    from rlhf_platform.embedded import embedded_database_url

    DATABASE_URL = embedded_database_url(DATA_DIR)
    os.environ["DATABASE_URL"] = DATABASE_URL  # child processes reuse it
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
# Server-side binding lets psycopg prepare a statement the fifth time a connection runs it,
# so the annotators' hot path is parsed and planned once per connection, not per call.
# Behind a pooler in transaction mode (pgbouncer < 1.21), set DB_PREPARE_THRESHOLD=off.
_prepare = os.environ.get("DB_PREPARE_THRESHOLD", "5")
DATABASES["default"]["OPTIONS"] = {
    "server_side_binding": True,
    "prepare_threshold": None if _prepare.lower() in ("off", "none", "") else int(_prepare),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# How many reverse proxies in front of the app append to X-Forwarded-For: the client's
# address is the one they saw. 0 (the default): X-Forwarded-For is the client's own claim
# and is ignored; the address is the connection's.
NUM_PROXIES = int(os.environ.get("NUM_PROXIES", "0"))
TOKEN_TTL_S = int(os.environ.get("TOKEN_TTL_S", str(7 * 24 * 3600)))  # API tokens expire

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:home"
LOGOUT_REDIRECT_URL = "login"

# --- Security headers; `manage.py check --deploy` is clean with DEBUG off -----------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if NUM_PROXIES > 0:  # told there is a proxy in front: trust its X-Forwarded-Proto
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy (django-csp): scripts, frames and connections from this site only,
# so injected markup cannot run script. Inline style attributes stay allowed (progress bars,
# the admin's change list); clips and posters may be blob: or data: URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],
        "media-src": [SELF, "blob:"],
        "connect-src": [SELF],
        "font-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an anonymous request gets 401 with WWW-Authenticate rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.JSONParser",  # nesting, long integers and unstorable strings: 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "URL_FORMAT_OVERRIDE": None,  # ?format= is the export's own parameter
    "NUM_PROXIES": NUM_PROXIES,  # throttles key on the real client address
}
SPECTACULAR_SETTINGS = {
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.document_error_responses",
    ],
    "TITLE": "RLHF platform API",
    "DESCRIPTION": "Collect human preferences over pairs and rankings; train on them.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from this site, not a CDN: the docs work on a closed network.
    "ENUM_NAME_OVERRIDES": {
        "ProjectKindEnum": "labeling.models.Project.Kind",
        "FeedbackLevelEnum": "labeling.feedback.LEVELS",
        "StrengthEnum": "labeling.feedback.STRENGTHS",
        "RunKindEnum": "training.models.Run.Kind",
        "RunStatusEnum": "training.models.Run.Status",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGIN_FAILURES_PER_MINUTE = int(os.environ.get("LOGIN_FAILURES_PER_MINUTE", "10"))  # per address
ACCOUNT_FAILURES_PER_HOUR = int(os.environ.get("ACCOUNT_FAILURES_PER_HOUR", "20"))

# --- Celery: CELERY_BROKER_URL, or an embedded Redis under DATA_DIR --------------------------
if os.environ.get("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
else:
    from rlhf_platform.embedded import embedded_redis_url

    CELERY_BROKER_URL = embedded_redis_url(DATA_DIR)
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
_broker_is_redis = CELERY_BROKER_URL.startswith(("redis://", "rediss://", "redis+socket://"))
CELERY_RESULT_BACKEND = os.environ.get(
    "CELERY_RESULT_BACKEND", CELERY_BROKER_URL if _broker_is_redis else "rpc://"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Queues: default (bookkeeping), train (CPU/GPU training), render (rollouts and clips).
# CELERY_QUEUE_PREFIX lets several deployments (or test runs) share one broker.
CELERY_QUEUE_PREFIX = os.environ.get("CELERY_QUEUE_PREFIX", "")
CELERY_TASK_DEFAULT_QUEUE = CELERY_QUEUE_PREFIX + "default"
CELERY_TASK_TIME_LIMIT = 2 * 60 * 60
# Longer than the longest task, or a late-acknowledged task is delivered twice while it runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 60 * 60}
CELERY_RESULT_EXPIRES = 24 * 60 * 60
CELERY_TASK_ROUTES = ["training.steps.route_task"]  # each step to its queue (STEPS)
CELERY_BEAT_SCHEDULE = {
    "release-expired-leases": {"task": "labeling.release_expired_leases", "schedule": 60.0},
    "requeue-stale-runs": {"task": "training.requeue_stale_runs", "schedule": 60.0},
    "check-arenas": {"task": "training.check_arenas", "schedule": 60.0},
    "resend-stale-deliveries": {"task": "labeling.resend_stale_deliveries", "schedule": 60.0},
}


# --- Cache: the throttles' and login counters' store, shared by every process -------------
# CACHE_URL (redis://..., unix:///path.sock), else the broker's Redis; per-process memory
# only when neither is given (then each web process counts on its own).
def _cache_url(broker: str) -> str | None:
    if os.environ.get("CACHE_URL"):
        return os.environ["CACHE_URL"]
    if broker.startswith(("redis://", "rediss://")):
        return broker
    if broker.startswith("redis+socket://"):
        return "unix://" + broker.removeprefix("redis+socket://")
    return None


if _cache_url(CELERY_BROKER_URL):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url(CELERY_BROKER_URL),
            "KEY_PREFIX": "rlhf-cache",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Training hardware ---------------------------------------------------------------------
# TRAINING_DEVICE: where this worker's training steps and sampling run: "auto" (CUDA when
# torch sees a GPU, else the CPU), "cpu", "cuda" or "cuda:N". A project's config.device
# other than "auto" overrides it (training/devices.py). Checked here without loading torch.
TRAINING_DEVICE = os.environ.get("TRAINING_DEVICE", "").strip() or "auto"
if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", TRAINING_DEVICE):
    raise ImproperlyConfigured(
        f"TRAINING_DEVICE={TRAINING_DEVICE!r}: use auto, cpu, cuda or cuda:N (a GPU's index)."
    )

# --- Labeling limits -----------------------------------------------------------------------
IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", str(20 * 1024 * 1024)))
# Larger imports are kept in storage and imported by a worker (202 and a job to follow).
IMPORT_SYNC_MAX_BYTES = int(os.environ.get("IMPORT_SYNC_MAX_BYTES", str(1024 * 1024)))
# Every other body is small: refused with 413 before it is read (core.middleware).
JSON_MAX_DEPTH = 32  # a request's JSON nests at most this deep
REQUEST_MAX_BYTES = int(os.environ.get("REQUEST_MAX_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
# The import endpoint streams its body and checks IMPORT_MAX_BYTES itself; a multipart
# upload's framing gets some room on top.
LARGE_BODY_LIMITS = {"api-import": IMPORT_MAX_BYTES + 64 * 1024}

# --- Webhooks (labeling/webhooks.py): signed POSTs of a project's events -------------------
# Staff may register any http(s) URL, and the workers POST to it from their network.
# WEBHOOK_ALLOWED_HOSTS (comma-separated, as ALLOWED_HOSTS: "hooks.example.com",
# ".example.com") limits where they may point; empty (the default) allows any host.
WEBHOOK_ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()
]
WEBHOOK_MAX_PER_PROJECT = int(os.environ.get("WEBHOOK_MAX_PER_PROJECT", "10"))
WEBHOOK_TIMEOUT_S = float(os.environ.get("WEBHOOK_TIMEOUT_S", "10"))  # per attempt
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "6"))
# Attempt n + 1 waits WEBHOOK_RETRY_BASE_S × 2^(n − 1): 30 s, 1, 2, 4 and 8 minutes.
WEBHOOK_RETRY_BASE_S = float(os.environ.get("WEBHOOK_RETRY_BASE_S", "30"))
# A pending delivery whose message is this late is sent again (labeling.resend_stale_deliveries).
WEBHOOK_RESEND_AFTER_S = float(os.environ.get("WEBHOOK_RESEND_AFTER_S", "300"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # pgserver logs every handle it opens and closes at INFO ("exiting ... remaining pids")
    "loggers": {"pgserver": {"level": "WARNING"}},
}
