# One image for every service (and the MLflow tracking server compose runs); docker-compose.yml
# and the Kubernetes manifests pick the service with `python -m services.<name>`, each on its
# port in shared/service_table.py.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODELPLANE_LOG_FORMAT=json

WORKDIR /app

# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY shared ./shared
COPY services ./services

RUN useradd --create-home --uid 10001 modelplane
USER 10001

EXPOSE 8000 8001 8002 5000
CMD ["python", "-m", "services.gateway"]
