"""The datasets service's configuration (`MODELPLANE_*` environment variables)."""

from pathlib import Path

from pydantic import Field

from shared.environments import Env
from shared.settings import ServiceSettings


class DatasetsSettings(ServiceSettings):
    datasets_host: str = "127.0.0.1"
    datasets_port: int = 8006
    # Where the service keeps its DVC remotes (one per dataset) and receives uploads.
    datasets_data_dir: Path = Path(".modelplane/datasets")
    # The local DVC remotes' root; none: `<data dir>/remotes`.
    datasets_remote_root: Path | None = None
    # The directories a version may be created from by path (a caller names a folder under one);
    # none: only `<data dir>/incoming`, so no caller can publish the service's other files.
    # E.g. MODELPLANE_DATASETS_SOURCE_ROOTS='["/mnt/datasets"]'.
    datasets_source_roots: list[Path] = Field(default_factory=list)
    # The largest upload taken, in bytes; past it the request is refused with 413.
    datasets_upload_max_bytes: int = 10 * 1024**3
    # The env whose IntegrationConfig (concern dataset_versioning) names the DVC remote versions
    # are pushed to; without one, a local directory remote under the remote root.
    datasets_env: Env = Env.DEV

    @property
    def remote_root(self) -> Path:
        return self.datasets_remote_root or self.datasets_data_dir / "remotes"

    @property
    def source_roots(self) -> list[Path]:
        return self.datasets_source_roots or [self.datasets_data_dir / "incoming"]

    @property
    def upload_dir(self) -> Path:
        return self.datasets_data_dir / "uploads"
