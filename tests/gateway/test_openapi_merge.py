"""`merge_openapi`: backends' documents joined without losing one of two same-named schemas,
and each forwarded operation lists the problems the gateway itself answers with."""

from services.gateway.openapi import merge_openapi


def _doc(path: str, schema_name: str, schema: dict) -> dict:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    return {
        "paths": {
            path: {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": ref}}},
                    "responses": {"201": {"description": "made"}},
                },
                "get": {"responses": {"200": {"description": "read"}}},
            }
        },
        "components": {"schemas": {schema_name: schema, "Shared": {"type": "string"}}},
    }


def test_a_backend_schema_whose_name_is_taken_is_renamed_and_its_references_follow() -> None:
    registry = _doc("/api/v1/registry/models", "VersionCreate", {"required": ["version"]})
    datasets = _doc("/api/v1/datasets", "VersionCreate", {"required": ["source_path"]})
    merged = merge_openapi({"paths": {}}, registry, ("/api/v1/registry",), "registry")
    merged = merge_openapi(merged, datasets, ("/api/v1/datasets",), "datasets")
    schemas = merged["components"]["schemas"]
    assert schemas["VersionCreate"] == {"required": ["version"]}
    assert schemas["DatasetsVersionCreate"] == {"required": ["source_path"]}
    assert "DatasetsShared" not in schemas  # the same schema twice is one schema
    body = merged["paths"]["/api/v1/datasets"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DatasetsVersionCreate"
    }
    registry_body = merged["paths"]["/api/v1/registry/models"]["post"]["requestBody"]["content"]
    assert registry_body["application/json"]["schema"]["$ref"].endswith("/VersionCreate")


def test_forwarded_operations_list_the_gateways_own_problems() -> None:
    merged = merge_openapi({"paths": {}}, _doc("/api/v1/registry/models", "M", {}))
    operations = merged["paths"]["/api/v1/registry/models"]
    assert set(operations["post"]["responses"]) == {"201", "401", "413", "415"}
    assert set(operations["get"]["responses"]) == {"200", "401"}
    problem = operations["post"]["responses"]["415"]["content"]["application/problem+json"]
    assert problem["schema"]["required"] == ["type", "title", "status", "detail"]
