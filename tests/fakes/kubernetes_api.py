"""A fake Kubernetes API server: batch/v1 Jobs and their Pods, and custom objects, over real HTTP.

Drive it with the real `kubernetes` client (`Configuration(host=fake.url)`). It implements
what the jobs service uses: create/get/list/watch/delete Jobs in a namespace, list Pods by
label and read (and follow) a Pod's log. Custom objects of any group (KServe InferenceServices,
Argo Workflows, ...) answer create, get, list, watch, replace, merge- and JSON-patch and delete,
and their `/status` subresource, as `CustomObjectsApi` expects. Kubernetes controllers are
simulated by test hooks: `start_job`, `finish_job`, `append_log`, `set_status`. Every request is
recorded in `requests`.
"""

import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

JOBS = re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
POD_LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$")
CUSTOM = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?P<status>/status)?)?$"
)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
JOBS_RESOURCE = ("batch", "jobs")

# Whether a custom resource's CRD enables the `status` subresource (then writes to the object
# ignore `status`, and only spec changes bump `generation`). Unlisted resources have it, as
# most controllers' CRDs do; Argo's Workflow CRD does not.
STATUS_SUBRESOURCE: dict[tuple[str, str], bool] = {
    ("serving.kserve.io", "inferenceservices"): True,
    ("argoproj.io", "workflows"): False,
    ("argoproj.io", "workflowtemplates"): False,
    ("argoproj.io", "cronworkflows"): False,
}
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")
SYSTEM_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]  # names in lower case


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: objects merge key by key, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return _copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class PatchError(ValueError):
    pass


def json_patch(target: Any, operations: list[dict]) -> Any:
    """RFC 6902 JSON Patch over a copy of `target`; PatchError when an operation cannot apply."""
    doc = _copy(target)

    def parts(pointer: str) -> list[str]:
        if pointer == "":
            return []
        if not pointer.startswith("/"):
            raise PatchError(f"invalid JSON pointer {pointer!r}")
        return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]

    def parent(pointer: str) -> tuple[Any, str]:
        *path, last = parts(pointer) or [""]
        node = doc
        for part in path:
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError) as exc:
                raise PatchError(f"path {pointer!r} does not exist") from exc
        return node, last

    def get(pointer: str) -> Any:
        node, last = parent(pointer)
        try:
            return node[int(last)] if isinstance(node, list) else node[last]
        except (KeyError, IndexError, ValueError) as exc:
            raise PatchError(f"path {pointer!r} does not exist") from exc

    def add(pointer: str, value: Any) -> None:
        nonlocal doc
        if pointer == "":
            doc = value
            return
        node, last = parent(pointer)
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), value)
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise PatchError(f"cannot add at {pointer!r}")

    def remove(pointer: str) -> Any:
        value = get(pointer)
        node, last = parent(pointer)
        if isinstance(node, list):
            node.pop(int(last))
        else:
            del node[last]
        return value

    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op == "add":
            add(path, _copy(operation.get("value")))
        elif op == "remove":
            remove(path)
        elif op == "replace":
            remove(path)
            add(path, _copy(operation.get("value")))
        elif op == "move":
            add(path, remove(operation["from"]))
        elif op == "copy":
            add(path, _copy(get(operation["from"])))
        elif op == "test":
            if get(path) != operation.get("value"):
                raise PatchError(f"test operation at {path!r} failed")
        else:
            raise PatchError(f"unknown operation {op!r}")
    return doc


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    """Equality-based label selectors: `a=b,c!=d,e` (enough for what is used here)."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


class FakeKubernetes:
    def __init__(self, token: str | None = None) -> None:
        self.token = token  # when set, requests need `Authorization: Bearer <token>`
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.pod_logs: dict[tuple[str, str], str] = {}
        # Custom objects by (group, plural, namespace, name).
        self.custom_objects: dict[tuple[str, str, str, str], dict] = {}
        self._kinds: dict[tuple[str, str], str] = {}  # (group, plural) -> kind, learnt on create
        # (resourceVersion, (group, plural), namespace, type, object)
        self._events: list[tuple[int, tuple[str, str], str, str, dict]] = []
        self._versions = itertools.count(2)  # 1 is the empty store's: a list's version is never "0"
        self._changed = threading.Condition()
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeKubernetes":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Test hooks: what the cluster's controllers and kubelets would do.

    def received(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    def start_job(self, name: str, namespace: str = "default") -> None:
        with self._changed:
            job = self.jobs[namespace, name]
            job["status"].update(active=1, ready=1, startTime=_now())
            pod = self._pod_of(namespace, name)
            pod["status"] = {
                "phase": "Running",
                "startTime": _now(),
                "containerStatuses": [
                    self._container_status(pod, {"running": {"startedAt": _now()}})
                ],
            }
            self._changed_object(namespace, "MODIFIED", job)

    def finish_job(
        self,
        name: str,
        namespace: str = "default",
        *,
        succeeded: bool,
        exit_code: int | None = None,
        reason: str | None = None,
        message: str = "",
    ) -> None:
        """Ends the Job the way the Job controller reports it (Kubernetes >= 1.31 conditions)."""
        with self._changed:
            job = self.jobs[namespace, name]
            now = _now()
            if succeeded:
                exit_code = 0 if exit_code is None else exit_code
                first, last, reason = (
                    "SuccessCriteriaMet",
                    "Complete",
                    reason or "CompletionsReached",
                )
            else:
                exit_code = 1 if exit_code is None else exit_code
                first, last, reason = "FailureTarget", "Failed", reason or "BackoffLimitExceeded"
            job["status"].update(active=0, ready=0, terminating=0)
            job["status"]["succeeded" if succeeded else "failed"] = 1
            if succeeded:
                job["status"]["completionTime"] = now
            job["status"]["conditions"] = [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
                for kind in (first, last)
            ]
            pod = self._pod_of(namespace, name)
            pod["status"] = {
                "phase": "Succeeded" if succeeded else "Failed",
                "containerStatuses": [
                    self._container_status(
                        pod,
                        {
                            "terminated": {
                                "exitCode": exit_code,
                                "reason": "Completed" if succeeded else "Error",
                                "startedAt": now,
                                "finishedAt": now,
                            }
                        },
                    )
                ],
            }
            self._changed_object(namespace, "MODIFIED", job)

    def append_log(self, job_name: str, text: str, namespace: str = "default") -> None:
        with self._changed:
            pod = self._pod_of(namespace, job_name)
            key = (namespace, pod["metadata"]["name"])
            self.pod_logs[key] = self.pod_logs.get(key, "") + text
            self._changed.notify_all()

    def set_status(self, group: str, plural: str, namespace: str, name: str, status: dict) -> dict:
        """Replaces a custom object's `status`, as its controller would; returns the new object."""
        with self._changed:
            obj = self.custom_objects[group, plural, namespace, name]
            obj["status"] = _copy(status)
            self._changed_object(namespace, "MODIFIED", obj, (group, plural))
            return _copy(obj)

    def custom_object(
        self, group: str, plural: str, name: str, namespace: str = "default"
    ) -> dict | None:
        """A copy of a stored custom object, or None."""
        with self._changed:
            obj = self.custom_objects.get((group, plural, namespace, name))
            return None if obj is None else _copy(obj)

    # State changes (callers hold self._changed).

    def _pod_of(self, namespace: str, job_name: str) -> dict:
        return next(
            pod
            for (ns, _), pod in self.pods.items()
            if ns == namespace and pod["metadata"]["labels"].get("job-name") == job_name
        )

    @staticmethod
    def _container_status(pod: dict, state: dict) -> dict:
        container = pod["spec"]["containers"][0]
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    def _changed_object(
        self, namespace: str, kind: str, obj: dict, resource: tuple[str, str] = JOBS_RESOURCE
    ) -> None:
        version = next(self._versions)
        obj["metadata"]["resourceVersion"] = str(version)
        self._events.append((version, resource, namespace, kind, _copy(obj)))
        self._changed.notify_all()

    def _last_version(self) -> int:
        return self._events[-1][0] if self._events else 1

    @staticmethod
    def _not_found(group: str, plural: str, name: str) -> tuple[int, dict]:
        return 404, _status(
            404,
            "NotFound",
            f'{plural}.{group} "{name}" not found',
            {"name": name, "group": group, "kind": plural},
        )

    def _create_custom(
        self, group: str, version: str, plural: str, namespace: str, body: Any
    ) -> tuple[int, dict]:
        if not isinstance(body, dict):
            return 400, _status(400, "BadRequest", "the body of the request is not a JSON object")
        if body.get("apiVersion") != f"{group}/{version}" or not body.get("kind"):
            return 400, _status(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) does not match "
                f"the expected API version ({group}/{version})",
            )
        metadata = body.setdefault("metadata", {})
        if metadata.get("namespace", namespace) != namespace:
            return 400, _status(
                400,
                "BadRequest",
                "the namespace of the provided object does not "
                "match the namespace sent on the request",
            )
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        name = metadata.get("name") or ""
        kind = body["kind"]
        if not DNS_SUBDOMAIN.match(name):
            reason = (
                "Required value"
                if not name
                else (
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                    "'-' or '.', and must start and end with an alphanumeric character"
                )
            )
            return 422, _status(
                422,
                "Invalid",
                f'{kind}.{group} "{name}" is invalid: metadata.name: {reason}',
                {
                    "name": name,
                    "group": group,
                    "kind": kind,
                    "causes": [
                        {"reason": "FieldValueInvalid", "message": reason, "field": "metadata.name"}
                    ],
                },
            )
        if (group, plural, namespace, name) in self.custom_objects:
            return 409, _status(
                409,
                "AlreadyExists",
                f'{plural}.{group} "{name}" already exists',
                {"name": name, "group": group, "kind": plural},
            )
        for field in SYSTEM_METADATA:
            metadata.pop(field, None)
        metadata.update(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=_now(),
            generation=1,
        )
        if STATUS_SUBRESOURCE.get((group, plural), True):
            body.pop("status", None)  # the API server drops status on create; controllers set it
        self._kinds[group, plural] = kind
        self.custom_objects[group, plural, namespace, name] = body
        self._changed_object(namespace, "ADDED", body, (group, plural))
        return 201, _copy(body)

    def _update_custom(
        self,
        group: str,
        plural: str,
        namespace: str,
        name: str,
        new: Any,
        *,
        status_only: bool,
        require_version: bool,
    ) -> tuple[int, dict]:
        """A PUT, or a patch already applied to the stored object: the API server's update rules."""
        key = (group, plural, namespace, name)
        old = self.custom_objects.get(key)
        if old is None:
            return self._not_found(group, plural, name)
        if not isinstance(new, dict):
            return 400, _status(400, "BadRequest", "the body of the request is not a JSON object")
        metadata = new.get("metadata") or {}
        if not isinstance(metadata, dict):
            return 400, _status(400, "BadRequest", "metadata must be an object")
        if metadata.get("name", name) != name:
            return 400, _status(
                400,
                "BadRequest",
                f"the name of the object ({metadata['name']}) does not "
                f"match the name on the URL ({name})",
            )
        given = metadata.get("resourceVersion")
        if require_version and not given:
            kind = self._kinds[group, plural]
            return 422, _status(
                422,
                "Invalid",
                f'{kind}.{group} "{name}" is invalid: metadata.resourceVersion: '
                "Invalid value: 0x0: must be specified for an update",
                {"name": name, "group": group, "kind": kind},
            )
        if given and given != old["metadata"]["resourceVersion"]:
            return 409, _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural}.{group} "{name}": '
                "the object has been modified; please apply your changes "
                "to the latest version and try again",
                {"name": name, "group": group, "kind": plural},
            )
        has_subresource = STATUS_SUBRESOURCE.get((group, plural), True)
        if status_only:
            updated = {**_copy(old), "status": _copy(new.get("status"))}
            if updated["status"] is None:
                del updated["status"]
        else:
            updated = {k: v for k, v in new.items()}
            updated["metadata"] = {
                **{k: v for k, v in metadata.items() if k not in SYSTEM_METADATA},
                **{k: old["metadata"][k] for k in SYSTEM_METADATA if k in old["metadata"]},
            }
            updated["apiVersion"], updated["kind"] = old["apiVersion"], old["kind"]
            if has_subresource:
                updated.pop("status", None)
                if "status" in old:
                    updated["status"] = old["status"]
            # generation counts changes outside metadata (outside status too, with the subresource)
            ignored = ("metadata", "status") if has_subresource else ("metadata",)
            if {k: v for k, v in updated.items() if k not in ignored} != {
                k: v for k, v in old.items() if k not in ignored
            }:
                updated["metadata"]["generation"] = old["metadata"]["generation"] + 1
        if updated == old:
            return 200, _copy(
                old
            )  # a no-op write keeps the resourceVersion, as the API server does
        if "deletionTimestamp" in updated["metadata"] and not updated["metadata"].get("finalizers"):
            del self.custom_objects[key]  # the last finalizer removed: the object goes
            self._changed_object(namespace, "DELETED", updated, (group, plural))
            return 200, _copy(updated)
        self.custom_objects[key] = updated
        self._changed_object(namespace, "MODIFIED", updated, (group, plural))
        return 200, _copy(updated)

    def _patch_custom(
        self,
        group: str,
        plural: str,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        status_only: bool,
    ) -> tuple[int, dict]:
        old = self.custom_objects.get((group, plural, namespace, name))
        if old is None:
            return self._not_found(group, plural, name)
        media = content_type.split(";")[0].strip().lower()
        if media == "application/merge-patch+json":
            if not isinstance(patch, dict):
                return 400, _status(400, "BadRequest", "a merge patch must be a JSON object")
            patched = merge_patch(old, patch)
            # the resourceVersion in a patch is a precondition; absent, the patch is unconditional
            version = (patch.get("metadata") or {}).get("resourceVersion") or old["metadata"][
                "resourceVersion"
            ]
            patched.setdefault("metadata", {})["resourceVersion"] = version
        elif media == "application/json-patch+json":
            if not isinstance(patch, list):
                return 400, _status(400, "BadRequest", "a JSON patch must be a JSON array")
            try:
                patched = json_patch(old, patch)
            except PatchError as exc:
                return 422, _status(422, "Invalid", str(exc))
        else:
            return 415, _status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCH_TYPES)}, application/apply-patch+yaml",
            )
        return self._update_custom(
            group, plural, namespace, name, patched, status_only=status_only, require_version=False
        )

    def _delete_custom(
        self, group: str, plural: str, namespace: str, name: str
    ) -> tuple[int, dict]:
        key = (group, plural, namespace, name)
        obj = self.custom_objects.get(key)
        if obj is None:
            return self._not_found(group, plural, name)
        if obj["metadata"].get("finalizers"):
            # finalizers hold the object until its controller removes them
            obj["metadata"].setdefault("deletionTimestamp", _now())
            self._changed_object(namespace, "MODIFIED", obj, (group, plural))
            return 200, _copy(obj)
        del self.custom_objects[key]
        obj["metadata"]["deletionTimestamp"] = _now()
        self._changed_object(namespace, "DELETED", obj, (group, plural))
        return 200, _status(
            200,
            "",
            "",
            {"name": name, "group": group, "kind": plural, "uid": obj["metadata"]["uid"]},
        )

    def _create_job(self, namespace: str, body: dict) -> tuple[int, dict]:
        metadata = body.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        name = metadata.get("name")
        if not name:
            return 422, _status(
                422, "Invalid", "Job.batch is invalid: metadata.name: Required value"
            )
        if (namespace, name) in self.jobs:
            return 409, _status(
                409,
                "AlreadyExists",
                f'jobs.batch "{name}" already exists',
                {"name": name, "group": "batch", "kind": "jobs"},
            )
        uid = str(uuid.uuid4())
        metadata.update(namespace=namespace, uid=uid, creationTimestamp=_now(), generation=1)
        body.setdefault("apiVersion", "batch/v1")
        body.setdefault("kind", "Job")
        spec = body.setdefault("spec", {})
        spec.setdefault("backoffLimit", 6)
        template = spec.setdefault("template", {})
        labels = {
            **template.get("metadata", {}).get("labels", {}),
            "controller-uid": uid,
            "batch.kubernetes.io/controller-uid": uid,
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
        }
        template.setdefault("metadata", {})["labels"] = labels
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        body["status"] = {"active": 1, "ready": 0, "terminating": 0, "startTime": _now()}
        self.jobs[namespace, name] = body
        # The Job controller creates the Job's Pod; it waits to be scheduled until start_job.
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        self.pods[namespace, pod_name] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "labels": labels,
                "creationTimestamp": _now(),
                "resourceVersion": "1",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                    }
                ],
            },
            "spec": json.loads(json.dumps(template.get("spec", {}))),
            "status": {"phase": "Pending"},
        }
        self._changed_object(namespace, "ADDED", body)
        return 201, body

    def _delete_job(self, namespace: str, name: str, options: dict) -> tuple[int, dict]:
        job = self.jobs.pop((namespace, name), None)
        if job is None:
            return 404, _status(
                404,
                "NotFound",
                f'jobs.batch "{name}" not found',
                {"name": name, "group": "batch", "kind": "jobs"},
            )
        if options.get("propagationPolicy") in ("Background", "Foreground"):
            for key in [
                k
                for k, pod in self.pods.items()
                if k[0] == namespace and pod["metadata"]["labels"].get("job-name") == name
            ]:
                del self.pods[key]
        job["metadata"]["deletionTimestamp"] = _now()
        self._changed_object(namespace, "DELETED", job)
        return 200, _status(
            200,
            "",
            "",
            {"name": name, "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]},
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Like the API server: HTTP/1.1, watches and followed logs in chunked encoding.
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def _serve(self, method: str) -> None:
                try:
                    self._route(method)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped reading a stream

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with fake._changed:
                    fake.requests.append(
                        RecordedRequest(
                            method,
                            url.path,
                            query,
                            body,
                            {k.lower(): v for k, v in self.headers.items()},
                        )
                    )
                if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                if match := JOBS.match(url.path):
                    return self._jobs(method, match["ns"], match["name"], query, body or {})
                if method == "GET" and (match := PODS.match(url.path)):
                    return self._pods(match["ns"], query)
                if method == "GET" and (match := POD_LOG.match(url.path)):
                    return self._log(match["ns"], match["name"], query)
                if match := CUSTOM.match(url.path):
                    return self._custom(method, match, query, body)
                self._json(
                    404,
                    _status(404, "NotFound", "the server could not find the requested resource"),
                )

            def _jobs(
                self, method: str, ns: str, name: str | None, query: dict, body: dict
            ) -> None:
                if name is None and method == "POST":
                    with fake._changed:
                        return self._json(*fake._create_job(ns, body))
                if name is None and method == "GET":
                    if query.get("watch", "").lower() in ("true", "1"):
                        return self._watch(
                            JOBS_RESOURCE,
                            ns,
                            query,
                            lambda: [job for (n, _), job in fake.jobs.items() if n == ns],
                        )
                    with fake._changed:
                        items = [
                            job
                            for (n, _), job in fake.jobs.items()
                            if n == ns
                            and _matches(
                                job["metadata"].get("labels", {}), query.get("labelSelector")
                            )
                        ]
                        version = str(fake._last_version())
                    return self._json(
                        200,
                        {
                            "kind": "JobList",
                            "apiVersion": "batch/v1",
                            "metadata": {"resourceVersion": version},
                            "items": items,
                        },
                    )
                if name is not None and method == "GET":
                    with fake._changed:
                        job = fake.jobs.get((ns, name))
                    if job is None:
                        return self._json(
                            404,
                            _status(
                                404,
                                "NotFound",
                                f'jobs.batch "{name}" not found',
                                {"name": name, "group": "batch", "kind": "jobs"},
                            ),
                        )
                    return self._json(200, job)
                if name is not None and method == "DELETE":
                    options = {**body}
                    if "propagationPolicy" in query:
                        options["propagationPolicy"] = query["propagationPolicy"]
                    with fake._changed:
                        return self._json(*fake._delete_job(ns, name, options))
                self._json(405, _status(405, "MethodNotAllowed", f"{method} is not supported"))

            def _custom(self, method: str, match: re.Match, query: dict, body: Any) -> None:
                group, version, ns, plural = (
                    match["group"],
                    match["version"],
                    match["ns"],
                    match["plural"],
                )
                name, status_only = match["name"], bool(match["status"])
                if status_only and not STATUS_SUBRESOURCE.get((group, plural), True):
                    return self._json(
                        404,
                        _status(
                            404, "NotFound", "the server could not find the requested resource"
                        ),
                    )
                if name is None and method == "POST":
                    with fake._changed:
                        return self._json(*fake._create_custom(group, version, plural, ns, body))
                if name is None and method == "GET":

                    def current() -> list[dict]:
                        return [
                            obj
                            for (g, p, n, _), obj in fake.custom_objects.items()
                            if (g, p, n) == (group, plural, ns)
                        ]

                    if query.get("watch", "").lower() in ("true", "1"):
                        return self._watch((group, plural), ns, query, current)
                    with fake._changed:
                        items = [
                            _copy(obj)
                            for obj in current()
                            if _matches(
                                obj["metadata"].get("labels", {}), query.get("labelSelector")
                            )
                        ]
                        kind = fake._kinds.get((group, plural), "")
                        listed = str(fake._last_version())
                    return self._json(
                        200,
                        {
                            "apiVersion": f"{group}/{version}",
                            "kind": f"{kind}List",
                            "metadata": {"continue": "", "resourceVersion": listed},
                            "items": items,
                        },
                    )
                if name is not None and method == "GET":
                    with fake._changed:
                        obj = fake.custom_objects.get((group, plural, ns, name))
                        if obj is None:
                            return self._json(*fake._not_found(group, plural, name))
                        return self._json(200, _copy(obj))
                if name is not None and method == "PUT":
                    with fake._changed:
                        return self._json(
                            *fake._update_custom(
                                group,
                                plural,
                                ns,
                                name,
                                body,
                                status_only=status_only,
                                require_version=True,
                            )
                        )
                if name is not None and method == "PATCH":
                    with fake._changed:
                        return self._json(
                            *fake._patch_custom(
                                group,
                                plural,
                                ns,
                                name,
                                self.headers.get("Content-Type", ""),
                                body,
                                status_only=status_only,
                            )
                        )
                if name is not None and method == "DELETE" and not status_only:
                    with fake._changed:
                        return self._json(*fake._delete_custom(group, plural, ns, name))
                self._json(405, _status(405, "MethodNotAllowed", f"{method} is not supported"))

            def _watch(self, resource: tuple[str, str], ns: str, query: dict, current: Any) -> None:
                selector = query.get("labelSelector")
                timeout = float(query.get("timeoutSeconds") or 300)
                since = int(query.get("resourceVersion") or 0)
                self._start_stream("application/json")
                with fake._changed:
                    if since == 0:  # no resourceVersion: the current objects first, as ADDED
                        pending = [("ADDED", _copy(obj)) for obj in current()]
                        since = fake._last_version()
                    else:
                        pending = []
                deadline = time.monotonic() + timeout
                while True:
                    for kind, obj in pending:
                        if _matches(obj["metadata"].get("labels", {}), selector):
                            self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                    with fake._changed:
                        fake._changed.wait_for(
                            lambda since=since: (
                                fake._stopping or (fake._events and fake._events[-1][0] > since)
                            ),
                            timeout=max(0.0, deadline - time.monotonic()),
                        )
                        if fake._stopping or time.monotonic() >= deadline:
                            return self._end_stream()
                        pending = [
                            (k, o)
                            for v, r, n, k, o in fake._events
                            if v > since and r == resource and n == ns
                        ]
                        since = fake._events[-1][0]

            def _pods(self, ns: str, query: dict) -> None:
                with fake._changed:
                    items = [
                        pod
                        for (n, _), pod in fake.pods.items()
                        if n == ns
                        and _matches(pod["metadata"]["labels"], query.get("labelSelector"))
                    ]
                self._json(
                    200,
                    {
                        "kind": "PodList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "1"},
                        "items": items,
                    },
                )

            def _log(self, ns: str, name: str, query: dict) -> None:
                with fake._changed:
                    pod = fake.pods.get((ns, name))
                    if pod is None:
                        return self._json(
                            404,
                            _status(
                                404,
                                "NotFound",
                                f'pods "{name}" not found',
                                {"name": name, "kind": "pods"},
                            ),
                        )
                    if pod["status"]["phase"] == "Pending":
                        container = pod["spec"]["containers"][0]["name"]
                        return self._json(
                            400,
                            _status(
                                400,
                                "BadRequest",
                                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
                            ),
                        )
                self._start_stream("text/plain")
                sent = 0
                follow = query.get("follow", "").lower() in ("true", "1")
                while True:
                    with fake._changed:
                        text = fake.pod_logs.get((ns, name), "")
                        pod = fake.pods.get((ns, name))
                        running = pod is not None and pod["status"]["phase"] == "Running"
                    if len(text) > sent:
                        self._chunk(text[sent:].encode())
                        sent = len(text)
                    if not follow or not running or fake._stopping:
                        return self._end_stream()
                    with fake._changed:
                        fake._changed.wait(timeout=0.5)

            def _start_stream(self, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _end_stream(self) -> None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _json(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
