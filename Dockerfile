FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY . .
RUN DEBUG=1 SECRET_KEY=build DATABASE_URL=postgresql://x@localhost/x CELERY_BROKER_URL=redis://x \
    python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "rlhf_platform.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--worker-class", "gthread", "--threads", "4"]
