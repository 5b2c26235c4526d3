"""A client of a Kubernetes API server, for every backend that talks to one (jobs, serving,
pipelines): one way to say which cluster and with what credentials."""

from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config


def api_client(
    *,
    host: str | None = None,
    token: str | None = None,
    ca_cert: str | None = None,
    verify_ssl: bool = True,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> k8s.ApiClient:
    """The API server at `host` (with a bearer `token`), else the `kubeconfig`'s, else the
    in-cluster one (`ConfigException` outside a cluster)."""
    if host:
        configuration = k8s.Configuration(host=host)
        configuration.verify_ssl = verify_ssl
        configuration.ssl_ca_cert = ca_cert
        if token:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return k8s.ApiClient(configuration)
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


def custom_object(answer: object) -> dict[str, Any]:
    """A custom object as the client returned it, typed: a JSON object.
    The client types custom objects as `object`; the API server answers them as JSON objects."""
    if not isinstance(answer, dict):
        raise TypeError(f"the Kubernetes API answered a {type(answer).__name__}, not an object")
    return answer
