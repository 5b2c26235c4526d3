"""Run the jobs service alone: `python -m services.jobs`."""

from services.jobs.app import SERVICE, create_app
from services.jobs.settings import JobsSettings
from shared.serve import serve

settings = JobsSettings()
serve(create_app(settings), settings, SERVICE, settings.jobs_host, settings.jobs_port)
