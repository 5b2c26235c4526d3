"""Run the registry service alone: `python -m services.registry`."""

from services.registry.app import SERVICE, create_app
from services.registry.settings import RegistrySettings
from shared.serve import serve

settings = RegistrySettings()
serve(create_app(settings), settings, SERVICE, settings.registry_host, settings.registry_port)
