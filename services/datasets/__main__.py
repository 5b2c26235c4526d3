"""Run the datasets service alone: `python -m services.datasets`."""

from services.datasets.app import SERVICE, create_app
from services.datasets.settings import DatasetsSettings
from shared.serve import serve

settings = DatasetsSettings()
serve(create_app(settings), settings, SERVICE, settings.datasets_host, settings.datasets_port)
