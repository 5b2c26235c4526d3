"""The table of services is consistent, and travels to child processes intact."""

import pytest

from shared.service_table import (
    SERVICES,
    TABLE_VARIABLE,
    ServiceSpec,
    backends,
    by_name,
    current_table,
    dump_table,
    parse_urls,
    start_groups,
)


def test_names_ports_and_variables_are_unique() -> None:
    for attribute in ("name", "default_port", "host_variable", "port_variable", "url_variable"):
        values = [getattr(spec, attribute) for spec in SERVICES]
        assert len(values) == len(set(values)), attribute


def test_no_public_path_belongs_to_two_services() -> None:
    roots = [root for spec in SERVICES for root in spec.path_roots]
    assert len(roots) == len(set(roots))
    for root in roots:
        assert root.startswith("/api/v1/") and not root.endswith("/")
        others = [other for other in roots if other != root]
        assert not any(other.startswith(root + "/") for other in others)


def test_todays_variables_and_limits() -> None:
    table = by_name()
    assert (table["registry"].url_variable, table["registry"].connections) == (
        "MODELPLANE_REGISTRY_URL",
        6,
    )
    assert table["jobs"].path_roots == ("/api/v1/jobs", "/api/v1/gpu-types")
    assert (table["gateway"].host_variable, table["gateway"].port_variable) == (
        "MODELPLANE_HTTP_HOST",
        "MODELPLANE_HTTP_PORT",
    )
    assert [spec.name for spec in backends()] == [
        "registry",
        "jobs",
        "serving",
        "pipelines",
        "datasets",
    ]


def test_the_gateway_starts_after_every_backend() -> None:
    groups = start_groups()
    assert [spec.name for spec in groups[-1]] == ["gateway"]
    assert {spec.name for spec in groups[0]} == {spec.name for spec in backends()}


def test_replicas_come_from_the_environment() -> None:
    registry = by_name()["registry"]
    assert registry.replicas({}) == 1
    assert registry.replicas({"MODELPLANE_REGISTRY_REPLICAS": "3"}) == 3
    with pytest.raises(ValueError, match="MODELPLANE_REGISTRY_REPLICAS"):
        registry.replicas({"MODELPLANE_REGISTRY_REPLICAS": "0"})


def test_urls_are_a_comma_separated_list() -> None:
    assert parse_urls("http://a:1/, http://b:2") == ("http://a:1", "http://b:2")
    assert parse_urls("http://a:1") == ("http://a:1",)


def test_a_table_passed_through_the_environment_is_read_back_whole() -> None:
    table = (*SERVICES, ServiceSpec("dummy", 8099, ("/api/v1/dummy",), module_name="tests.x"))
    assert current_table({TABLE_VARIABLE: dump_table(table)}) == table
    assert current_table({}) == SERVICES
