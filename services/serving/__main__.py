"""Run the serving service alone: `python -m services.serving`."""

from services.serving.app import SERVICE, create_app
from services.serving.settings import ServingSettings
from shared.serve import serve

settings = ServingSettings()
serve(create_app(settings), settings, SERVICE, settings.serving_host, settings.serving_port)
