"""The pipelines service's rules, pure Python: a pipeline definition (a DAG of named stages) and
its validation, and the status machines of a run and of its stages.

A definition, as JSON:

    {"parameters": {"threshold": 0.9},            # the run's parameters and their defaults
     "stages": [
       {"name": "train", "kind": "train", "max_retries": 1, "timeout_seconds": 3600,
        "parameters": {"command": ["python", "train.py"], "image": "...", "resources": {...}}},
       {"name": "evaluate", "kind": "evaluate", "depends_on": ["train"],
        "parameters": {"command": ["python", "eval.py", "--run", "${train.run_id}"]}},
       {"name": "register", "kind": "register", "depends_on": ["evaluate"],
        "when": "auc >= params.threshold",
        "parameters": {"model_id": "...", "run_id": "${train.run_id}",
                       "metrics": "${evaluate.metrics}"}},
       {"name": "staging", "kind": "promote", "depends_on": ["register"],
        "parameters": {"version_id": "${register.version_id}", "stage": "staging"}},
       {"name": "approve", "kind": "approve", "depends_on": ["staging"]},
       {"name": "deploy", "kind": "deploy", "depends_on": ["approve"],
        "parameters": {"endpoint_id": "...", "version_id": "${register.version_id}"}}]}

A train or evaluate stage's parameters are its job (JobRequest's fields but name, project, env
and type, which the run gives). `when` reads upstream stages' metrics (`evaluate.auc`, or a bare
`auc` when the stage has one dependency) and run parameters (`params.x`); when it is false the
stage and every stage after it are skipped. `${stage.output}` passes an upstream stage's output
(OUTPUTS lists each kind's) or a run parameter (`${params.x}`) into a stage's parameters.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from services.pipelines.conditions import Condition, ConditionError, Reference, parse_condition
from shared.errors import Conflict, InvalidInput
from shared.events.jobs import JobRequest

STAGE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_STAGE_NAME_LENGTH = 63
MAX_STAGES = 200
MAX_RETRIES = 10
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
# `${train.run_id}`, `${evaluate.metrics.auc}`, `${params.threshold}` inside a stage's parameters.
REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)\s*\}")
# The name a condition or a reference uses for the run's parameters; no stage may take it.
PARAMS = "params"
METRICS = "metrics"


class StageKind(StrEnum):
    TRAIN = "train"
    EVALUATE = "evaluate"
    REGISTER = "register"
    PROMOTE = "promote"
    DEPLOY = "deploy"
    APPROVE = "approve"

    @property
    def runs_a_job(self) -> bool:
        return self in (StageKind.TRAIN, StageKind.EVALUATE)


class OrchestrationSystem(StrEnum):
    LOCAL = "local"
    ARGO_WORKFLOWS = "argo_workflows"


# A registered model's stages a promote stage may move a version to (the registry's ModelStage).
MODEL_STAGES = ("none", "staging", "production", "archived")

# What each kind's stage hands to later stages, by name (`${stage.name}`).
OUTPUTS: dict[StageKind, frozenset[str]] = {
    StageKind.TRAIN: frozenset({"job_id", "run_id", "artifact_uri", METRICS}),
    StageKind.EVALUATE: frozenset({"job_id", "run_id", "artifact_uri", METRICS}),
    StageKind.REGISTER: frozenset({"model_id", "version_id", "version"}),
    StageKind.PROMOTE: frozenset({"model_id", "version_id", "stage"}),
    StageKind.DEPLOY: frozenset({"deployment_id", "endpoint_id", "version_id"}),
    StageKind.APPROVE: frozenset({"approved_by", "comment"}),
}

# The parameters of the kinds that do not run a job: (required, optional). A train or evaluate
# stage's parameters are its job (`command`, `image`, `resources`, ...), checked as a JobRequest.
COMMAND_PARAMETERS: dict[StageKind, tuple[frozenset[str], frozenset[str]]] = {
    StageKind.REGISTER: (
        frozenset({"model_id"}),
        frozenset({"run_id", "artifact_uri", METRICS, "version", "description", "tags"}),
    ),
    StageKind.PROMOTE: (frozenset({"version_id", "stage"}), frozenset({"comment"})),
    StageKind.DEPLOY: (frozenset({"endpoint_id", "version_id"}), frozenset()),
    StageKind.APPROVE: (frozenset(), frozenset({"instructions"})),
}
# The fields of a stage's job the engine fills in itself.
JOB_FIELDS_FROM_THE_RUN = ("name", "project_id", "env", "job_type")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: which stage (None: the whole), which rule, and why."""

    stage: str | None
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "rule": self.rule, "message": self.message}


class InvalidDefinition(InvalidInput):
    kind = "invalid-pipeline-definition"
    title = "The pipeline definition is not valid"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            f"{len(problems)} problem(s): " + "; ".join(p.message for p in problems),
            problems=[p.to_dict() for p in problems],
        )
        self.problems = problems


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: StageKind
    depends_on: tuple[str, ...] = ()
    condition: Condition | None = None
    max_retries: int = 0
    timeout_seconds: int | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "kind": str(self.kind),
            "depends_on": list(self.depends_on),
            "max_retries": self.max_retries,
            "parameters": dict(self.parameters),
        }
        if self.condition is not None:
            body["when"] = self.condition.text
        if self.timeout_seconds is not None:
            body["timeout_seconds"] = self.timeout_seconds
        return body


@dataclass(frozen=True)
class PipelineDefinition:
    """A validated DAG: stages in the order written, which is also their topological order's
    tie-break; `parameters` are the run parameters' defaults (None: the run must give it)."""

    stages: tuple[StageSpec, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> StageSpec:
        return self._by_name[name]

    @property
    def _by_name(self) -> dict[str, StageSpec]:
        return {s.name: s for s in self.stages}

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def dependents(self, name: str) -> list[str]:
        return [s.name for s in self.stages if name in s.depends_on]

    def ancestors(self, name: str) -> set[str]:
        return _ancestors(name, {s.name: s.depends_on for s in self.stages})

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": dict(self.parameters), "stages": [s.to_dict() for s in self.stages]}


def _ancestors(name: str, graph: Mapping[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(name, ()))
    while todo:
        upstream = todo.pop()
        if upstream not in seen and upstream in graph:
            seen.add(upstream)
            todo.extend(graph[upstream])
    return seen


def find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One cycle of `graph` (stage -> its dependencies) as `[a, b, ..., a]`, or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for start in graph:
        if colour[start] != white:
            continue
        path = [start]
        colour[start] = grey
        iterators = [iter(graph[start])]
        while iterators:
            upstream = next(iterators[-1], None)
            if upstream is None:
                colour[path.pop()] = black
                iterators.pop()
            elif upstream not in colour or upstream == path[-1]:
                continue  # unknown dependencies and self-loops are problems of their own
            elif colour[upstream] == grey:
                return [*path[path.index(upstream) :], upstream]
            elif colour[upstream] == white:
                colour[upstream] = grey
                path.append(upstream)
                iterators.append(iter(graph[upstream]))
    return None


def references_in(value: Any) -> Iterator[Reference]:
    """Every `${a.b}` in a parameter value, however deep in lists and objects."""
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            yield tuple(match.group(1).split("."))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from references_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from references_in(item)


def parse_definition(raw: Any) -> PipelineDefinition:
    """The definition `raw` (parsed JSON) describes, or InvalidDefinition listing every problem."""
    problems: list[Problem] = []
    add = problems.append
    if not isinstance(raw, Mapping):
        raise InvalidDefinition(
            [Problem(None, "definition-object", "the definition must be an object")]
        )
    for key in raw.keys() - {"stages", "parameters"}:
        add(
            Problem(
                None,
                "field-known",
                f"unknown field '{key}' (a definition has 'stages' and 'parameters')",
            )
        )
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        add(Problem(None, "parameters-object", "'parameters' must be an object of defaults"))
        parameters = {}
    for name in parameters:
        if not PARAMETER_NAME.match(str(name)):
            add(
                Problem(
                    None,
                    "parameter-name",
                    f"run parameter '{name}' must be a letter or _ then letters, digits or _",
                )
            )
    raw_stages = raw.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        add(Problem(None, "stages-required", "'stages' must be a non-empty list of stages"))
        raise InvalidDefinition(problems)
    if len(raw_stages) > MAX_STAGES:
        add(Problem(None, "stages-limit", f"a pipeline has at most {MAX_STAGES} stages"))

    stages: list[StageSpec] = []
    # Every stage with a name, valid or not, so one stage's problem hides no other's.
    graph: dict[str, tuple[str, ...]] = {}
    for index, raw_stage in enumerate(raw_stages):
        stage = _parse_stage(index, raw_stage, problems)
        name = raw_stage.get("name") if isinstance(raw_stage, Mapping) else None
        if not isinstance(name, str):
            continue
        if name in graph:
            add(Problem(name, "stage-name-unique", f"stage name '{name}' is used more than once"))
            continue
        depends_on = raw_stage.get("depends_on", [])
        graph[name] = (
            tuple(d for d in depends_on if isinstance(d, str))
            if isinstance(depends_on, list)
            else ()
        )
        if stage is not None:
            stages.append(stage)

    for name, depends_on in graph.items():
        for upstream in depends_on:
            if upstream == name:
                add(Problem(name, "no-self-dependency", f"stage '{name}' depends on itself"))
            elif upstream not in graph:
                add(
                    Problem(
                        name,
                        "dependency-known",
                        f"stage '{name}' depends on unknown stage '{upstream}'",
                    )
                )
    cycle = find_cycle(graph)
    if cycle is not None:
        add(Problem(cycle[0], "no-cycle", "the stages form a cycle: " + " -> ".join(cycle)))
    else:
        kinds = {s.name: s.kind for s in stages}
        for stage in stages:
            ancestors = _ancestors(stage.name, graph)
            _check_condition(stage, ancestors, kinds, parameters, add)
            _check_references(stage, ancestors, kinds, parameters, add)
    if problems:
        raise InvalidDefinition(problems)
    return PipelineDefinition(tuple(stages), dict(parameters))


STAGE_FIELDS = frozenset(
    {"name", "kind", "depends_on", "when", "max_retries", "timeout_seconds", "parameters"}
)


def _parse_stage(index: int, raw: Any, problems: list[Problem]) -> StageSpec | None:
    add = problems.append
    if not isinstance(raw, Mapping):
        add(Problem(None, "stage-object", f"stage #{index + 1} must be an object"))
        return None
    name = raw.get("name")
    label = name if isinstance(name, str) and name else f"#{index + 1}"
    before = len(problems)
    if not isinstance(name, str) or not STAGE_NAME.match(name) or len(name) > MAX_STAGE_NAME_LENGTH:
        add(
            Problem(
                label,
                "stage-name-format",
                f"stage {label}: a name is lowercase letters, digits and single hyphens, starting "
                f"with a letter, at most {MAX_STAGE_NAME_LENGTH} characters",
            )
        )
    elif name == PARAMS:
        add(
            Problem(
                label, "stage-name-reserved", f"'{PARAMS}' names the run's parameters, not a stage"
            )
        )
    for key in raw.keys() - STAGE_FIELDS:
        add(Problem(label, "field-known", f"stage {label}: unknown field '{key}'"))
    raw_kind = raw.get("kind")
    kind = next((k for k in StageKind if k == raw_kind), None)
    if kind is None:
        add(
            Problem(
                label,
                "kind-known",
                f"stage {label}: kind {raw.get('kind')!r} is not one of {', '.join(StageKind)}",
            )
        )
    depends_on = raw.get("depends_on", [])
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        add(
            Problem(
                label,
                "depends-on-list",
                f"stage {label}: 'depends_on' must be a list of stage names",
            )
        )
        depends_on = []
    elif len(set(depends_on)) != len(depends_on):
        add(Problem(label, "depends-on-unique", f"stage {label}: 'depends_on' names a stage twice"))
    max_retries = raw.get("max_retries", 0)
    if not _is_int(max_retries) or not 0 <= max_retries <= MAX_RETRIES:
        add(
            Problem(
                label,
                "max-retries-range",
                f"stage {label}: 'max_retries' must be an integer from 0 to {MAX_RETRIES}",
            )
        )
        max_retries = 0
    timeout = raw.get("timeout_seconds")
    if timeout is not None and (not _is_int(timeout) or not 0 < timeout <= MAX_TIMEOUT_SECONDS):
        add(
            Problem(
                label,
                "timeout-range",
                f"stage {label}: 'timeout_seconds' must be an integer from 1 to "
                f"{MAX_TIMEOUT_SECONDS}",
            )
        )
        timeout = None
    condition = None
    if raw.get("when") is not None:
        try:
            condition = parse_condition(raw["when"])
        except ConditionError as error:
            add(
                Problem(
                    label,
                    "condition-parses",
                    f"stage {label}: condition {raw['when']!r} does not parse: {error}",
                )
            )
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, Mapping):
        add(Problem(label, "parameters-object", f"stage {label}: 'parameters' must be an object"))
        parameters = {}
    if kind is not None:
        _check_parameters(label, kind, parameters, add)
    if len(problems) != before or kind is None or not isinstance(name, str):
        return None
    return StageSpec(
        name, kind, tuple(depends_on), condition, max_retries, timeout, dict(parameters)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_parameters(label: str, kind: StageKind, parameters: Mapping[str, Any], add) -> None:
    if kind.runs_a_job:
        for key in JOB_FIELDS_FROM_THE_RUN:
            if key in parameters:
                add(
                    Problem(
                        label,
                        "parameter-unknown",
                        f"stage {label}: the job's '{key}' comes from the run, not the stage",
                    )
                )
        placeholder = {
            "name": label,
            "project_id": "00000000-0000-0000-0000-000000000000",
            "env": "dev",
        }
        body = {k: v for k, v in parameters.items() if k not in JOB_FIELDS_FROM_THE_RUN}
        try:
            JobRequest.model_validate({**body, **placeholder})
        except ValidationError as error:
            for e in error.errors():
                where = ".".join(str(p) for p in e["loc"])
                rule = (
                    "parameter-required"
                    if e["type"] == "missing"
                    else (
                        "parameter-unknown"
                        if e["type"] == "extra_forbidden"
                        else "parameter-invalid"
                    )
                )
                add(Problem(label, rule, f"stage {label}: job parameter '{where}': {e['msg']}"))
        return
    required, optional = COMMAND_PARAMETERS[kind]
    for key in sorted(required - parameters.keys()):
        add(
            Problem(
                label,
                "parameter-required",
                f"stage {label}: a {kind} stage needs parameter '{key}'",
            )
        )
    for key in sorted(parameters.keys() - required - optional):
        add(
            Problem(
                label,
                "parameter-unknown",
                f"stage {label}: a {kind} stage has no parameter '{key}'",
            )
        )
    for key in required & parameters.keys():
        if parameters[key] in (None, ""):
            add(Problem(label, "parameter-required", f"stage {label}: parameter '{key}' is empty"))
    stage = parameters.get("stage")
    if (
        kind == StageKind.PROMOTE
        and isinstance(stage, str)
        and not REFERENCE.search(stage)
        and stage not in MODEL_STAGES
    ):
        add(
            Problem(
                label,
                "parameter-invalid",
                f"stage {label}: 'stage' must be one of {', '.join(MODEL_STAGES)}, not {stage!r}",
            )
        )


def condition_subject(stage: StageSpec, reference: Reference) -> tuple[str, str] | None:
    """(stage, metric) a condition's name reads; a bare `auc` is the one dependency's metric.
    None for a run parameter (`params.x`) or a name that fits neither."""
    if reference[0] == PARAMS:
        return None
    if len(reference) == 1 and len(stage.depends_on) == 1:
        return stage.depends_on[0], reference[0]
    if len(reference) == 2:
        return reference[0], reference[1]
    if len(reference) == 3 and reference[1] == METRICS:
        return reference[0], reference[2]
    return None


def _check_condition(
    stage: StageSpec,
    upstream: set[str],
    kinds: Mapping[str, StageKind],
    parameters: Mapping[str, Any],
    add,
) -> None:
    if stage.condition is None:
        return
    for reference in stage.condition.references():
        written = ".".join(reference)
        if reference[0] == PARAMS:
            if len(reference) != 2 or reference[1] not in parameters:
                add(
                    Problem(
                        stage.name,
                        "condition-reference",
                        f"stage {stage.name}: condition reads '{written}', "
                        "which is not a declared run parameter",
                    )
                )
            continue
        subject = condition_subject(stage, reference)
        if subject is None:
            hint = (
                "name the stage: '<stage>.<metric>'"
                if len(reference) == 1
                else "write '<stage>.<metric>'"
            )
            add(
                Problem(
                    stage.name,
                    "condition-reference",
                    f"stage {stage.name}: condition reads '{written}'; {hint}",
                )
            )
        elif subject[0] not in upstream:
            add(
                Problem(
                    stage.name,
                    "condition-reference",
                    f"stage {stage.name}: condition reads '{written}', "
                    f"but '{subject[0]}' is not upstream of it",
                )
            )
        elif subject[0] in kinds and not kinds[subject[0]].runs_a_job:
            add(
                Problem(
                    stage.name,
                    "condition-reference",
                    f"stage {stage.name}: condition reads '{written}', "
                    f"but a {kinds[subject[0]]} stage reports no metrics",
                )
            )


def _check_references(
    stage: StageSpec,
    upstream: set[str],
    kinds: Mapping[str, StageKind],
    parameters: Mapping[str, Any],
    add,
) -> None:
    for reference in references_in(dict(stage.parameters)):
        written = "${" + ".".join(reference) + "}"
        head = reference[0]
        if head == PARAMS:
            if len(reference) != 2 or reference[1] not in parameters:
                add(
                    Problem(
                        stage.name,
                        "reference-known",
                        f"stage {stage.name}: {written} is not a declared run parameter",
                    )
                )
        elif head not in upstream:
            add(
                Problem(
                    stage.name,
                    "reference-known",
                    f"stage {stage.name}: {written} reads stage '{head}', "
                    "which is not upstream of it",
                )
            )
        elif head in kinds and _not_an_output(reference, kinds[head]):
            add(
                Problem(
                    stage.name,
                    "reference-known",
                    f"stage {stage.name}: {written}: a {kinds[head]} stage's outputs are "
                    + ", ".join(sorted(OUTPUTS[kinds[head]])),
                )
            )


def _not_an_output(reference: Reference, kind: StageKind) -> bool:
    if len(reference) < 2 or reference[1] not in OUTPUTS[kind]:
        return True
    return len(reference) > (3 if reference[1] == METRICS else 2)


def substitute(value: Any, lookup) -> Any:
    """`value` with each `${...}` replaced by `lookup(reference)`; a string that is exactly one
    reference takes the value itself (a number stays a number, metrics stay an object)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole is not None:
            return lookup(tuple(whole.group(1).split(".")))
        return REFERENCE.sub(lambda m: _text(lookup(tuple(m.group(1).split(".")))), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def unapproved_promotions(definition: PipelineDefinition) -> list[str]:
    """The promote stages that may move a version to production (named, or read from a
    reference) with no approve stage before them: whoever starts such a run approves them."""
    return [
        spec.name
        for spec in definition.stages
        if spec.kind == StageKind.PROMOTE
        and (
            spec.parameters.get("stage") == "production"
            or REFERENCE.search(str(spec.parameters.get("stage")))
        )
        and not any(
            definition.stage(a).kind == StageKind.APPROVE for a in definition.ancestors(spec.name)
        )
    ]


class InvalidRunParameters(InvalidInput):
    kind = "invalid-run-parameters"
    title = "The run's parameters do not fit its pipeline's definition"


def check_run_parameters(definition: PipelineDefinition, parameters: Mapping[str, Any]) -> None:
    """A run gives only declared parameters, and every one whose default is null."""
    problems = [
        f"'{name}' is not a parameter of the pipeline"
        for name in parameters
        if name not in definition.parameters
    ]
    problems += [
        f"'{name}' has no default, so the run must give it"
        for name, default in definition.parameters.items()
        if default is None and parameters.get(name) is None
    ]
    if problems:
        raise InvalidRunParameters("; ".join(problems), problems=problems)


# ---- the status machines -------------------------------------------------------------------


class RunStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.CREATED: frozenset({RunStatus.PENDING, RunStatus.CANCELLED}),
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.RETRYING}
    ),
    RunStatus.RETRYING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.FAILED: frozenset({RunStatus.RETRYING}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class StageStatus(StrEnum):
    PENDING = "pending"  # its dependencies have not all finished
    REQUESTED = "requested"  # asked of the owning service, not started yet
    RUNNING = "running"  # started (an approve stage: waiting for a person)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (StageStatus.REQUESTED, StageStatus.RUNNING)


STAGE_TRANSITIONS: dict[StageStatus, frozenset[StageStatus]] = {
    StageStatus.PENDING: frozenset(
        {StageStatus.REQUESTED, StageStatus.RUNNING, StageStatus.SKIPPED, StageStatus.FAILED}
    ),
    StageStatus.REQUESTED: frozenset(
        {StageStatus.RUNNING, StageStatus.FAILED, StageStatus.CANCELLED, StageStatus.REQUESTED}
    ),
    StageStatus.RUNNING: frozenset(
        {StageStatus.SUCCEEDED, StageStatus.FAILED, StageStatus.CANCELLED, StageStatus.REQUESTED}
    ),
    StageStatus.FAILED: frozenset({StageStatus.PENDING}),
    StageStatus.CANCELLED: frozenset({StageStatus.PENDING}),
    StageStatus.SUCCEEDED: frozenset(),
    StageStatus.SKIPPED: frozenset(),
}


class IllegalRunTransition(Conflict):
    kind = "illegal-run-transition"
    title = "The run cannot move to that status"


def check_run_transition(current: RunStatus, target: RunStatus) -> None:
    if target not in RUN_TRANSITIONS[current]:
        raise IllegalRunTransition(f"a {current} run cannot become {target}")


def check_stage_transition(name: str, current: StageStatus, target: StageStatus) -> None:
    if target not in STAGE_TRANSITIONS[current]:
        raise IllegalRunTransition(f"stage {name}: a {current} stage cannot become {target}")
