"""Run the pipelines service alone: `python -m services.pipelines`."""

from services.pipelines.app import SERVICE, create_app
from services.pipelines.settings import PipelinesSettings
from shared.serve import serve

settings = PipelinesSettings()
serve(create_app(settings), settings, SERVICE, settings.pipelines_host, settings.pipelines_port)
