"""A pipeline definition is checked whole before anything runs: every problem in one 422."""

import pytest

from services.pipelines.conditions import ConditionError, parse_condition
from services.pipelines.domain import (
    InvalidDefinition,
    StageKind,
    parse_definition,
    substitute,
    unapproved_promotions,
)
from tests.pipelines.definitions import MODEL_ID, release_pipeline, stage


def problems_of(raw) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidDefinition) as err:
        parse_definition(raw)
    assert err.value.status == 422
    assert err.value.to_dict()["type"].endswith("/invalid-pipeline-definition")
    return [(p["stage"], p["rule"]) for p in err.value.to_dict()["problems"]]


def messages_of(raw) -> list[str]:
    with pytest.raises(InvalidDefinition) as err:
        parse_definition(raw)
    return [p.message for p in err.value.problems]


def test_the_release_pipeline_is_valid_and_keeps_its_order():
    definition = parse_definition(release_pipeline())
    assert definition.names() == [
        "train",
        "evaluate",
        "register",
        "staging",
        "approve",
        "production",
    ]
    register = definition.stage("register")
    assert (
        register.kind == StageKind.REGISTER and register.condition.text == "auc >= params.threshold"
    )
    assert definition.ancestors("production") == {
        "train",
        "evaluate",
        "register",
        "staging",
        "approve",
    }
    assert definition.dependents("evaluate") == ["register"]
    assert parse_definition(definition.to_dict()) == definition


def test_a_cycle_is_named_stage_by_stage():
    messages = messages_of(
        {
            "stages": [
                stage("a", "train", "c"),
                stage("b", "train", "a"),
                stage("c", "train", "b"),
                stage("d", "train"),
            ]
        }
    )
    assert messages == ["the stages form a cycle: a -> c -> b -> a"]


def test_a_stage_depending_on_itself_is_a_self_loop_not_a_cycle():
    assert problems_of({"stages": [stage("a", "train", "a")]}) == [("a", "no-self-dependency")]


def test_an_unknown_dependency_is_named():
    assert messages_of({"stages": [stage("a", "train"), stage("b", "evaluate", "a", "trian")]}) == [
        "stage 'b' depends on unknown stage 'trian'"
    ]


def test_duplicate_stage_names_and_unknown_kinds_are_refused():
    assert problems_of(
        {
            "stages": [
                stage("a", "train"),
                stage("a", "evaluate"),
                {"name": "b", "kind": "sing"},
            ]
        }
    ) == [("a", "stage-name-unique"), ("b", "kind-known")]


def test_every_problem_is_listed_at_once():
    problems = problems_of(
        {
            "stages": [
                stage("train", "train", parameters={}),
                stage("Bad_Name", "train"),
                stage("evaluate", "evaluate", "train", "ghost", max_retries=-1, timeout_seconds=0),
                stage(
                    "register", "register", "evaluate", when="auc >=", parameters={"version": "1"}
                ),
                stage(
                    "promote",
                    "promote",
                    "register",
                    parameters={"version_id": "x", "stage": "prod"},
                ),
                stage(
                    "deploy", "deploy", "promote", parameters={"endpoint_id": "e", "colour": "red"}
                ),
            ]
        }
    )
    assert problems == [
        ("train", "parameter-required"),  # a job needs its command
        ("Bad_Name", "stage-name-format"),
        ("evaluate", "max-retries-range"),
        ("evaluate", "timeout-range"),
        ("register", "condition-parses"),
        ("register", "parameter-required"),  # model_id
        ("promote", "parameter-invalid"),  # no stage 'prod'
        ("deploy", "parameter-required"),  # version_id
        ("deploy", "parameter-unknown"),  # colour
        ("evaluate", "dependency-known"),
    ]


def test_conditions_and_references_must_read_upstream_stages_and_declared_parameters():
    problems = problems_of(
        {
            "parameters": {"threshold": 0.9},
            "stages": [
                stage("train", "train"),
                stage("evaluate", "evaluate", "train", when="later.auc > 1 or params.nope < 2"),
                stage("later", "train", "evaluate"),
                stage(
                    "both",
                    "register",
                    "train",
                    "later",
                    when="auc > 0.5",
                    parameters={"model_id": MODEL_ID, "run_id": "${train.nothing}"},
                ),
                stage(
                    "ok",
                    "register",
                    "later",
                    when="later.metrics.auc >= params.threshold",
                    parameters={"model_id": "${params.model}", "version": "v-${later.run_id}"},
                ),
                stage("gate", "approve", "ok", when="ok.version_id > 1"),
            ],
        }
    )
    assert problems == [
        ("evaluate", "condition-reference"),  # later is downstream
        ("evaluate", "condition-reference"),  # params.nope undeclared
        ("both", "condition-reference"),  # bare auc with two dependencies
        ("both", "reference-known"),  # train has no output 'nothing'
        ("ok", "reference-known"),  # params.model undeclared
        ("gate", "condition-reference"),  # a register stage has no metrics
    ]


def test_the_definition_must_be_an_object_with_stages():
    assert problems_of([]) == [(None, "definition-object")]
    assert problems_of({"stages": [], "colour": 1}) == [
        (None, "field-known"),
        (None, "stages-required"),
    ]
    assert problems_of({"stages": ["train"]}) == [(None, "stage-object")]


def test_the_job_fields_a_run_fills_in_are_not_the_stages_to_give():
    assert problems_of(
        {
            "stages": [
                stage(
                    "train",
                    "train",
                    parameters={"command": ["true"], "env": "prod", "use_gpu": "maybe"},
                )
            ]
        }
    ) == [("train", "parameter-unknown"), ("train", "parameter-invalid")]


@pytest.mark.parametrize(
    "text",
    [
        "auc >= 0.9",
        "evaluate.auc > 0.8 and evaluate.loss < -0.5e-1",
        "not (a.b == 1 or a.c != 2)",
        "train-model.auc>=.9",
    ],
)
def test_conditions_that_parse(text):
    assert parse_condition(text).text == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auc >=", "expected a number or a metric name at 7, found the end"),
        ("auc", "expected a comparison (<, <=, >, >=, ==, !=) at 4, found the end"),
        ("__import__('os').system('x') == 1", 'unexpected character "\'" at 12'),
        ("auc >= 0.9 and", "expected a number or a metric name at 15, found the end"),
        ("(auc > 1", "expected ')' at 9, found the end"),
        ("auc > 1 2", "expected 'and', 'or' or the end at 9, found '2'"),
        ("auc = 1", "unexpected character '=' at 5"),
        ("", "a condition must be a non-empty string"),
    ],
)
def test_conditions_that_do_not_parse_say_where(text, message):
    with pytest.raises(ConditionError) as err:
        parse_condition(text)
    assert str(err.value) == message


def test_a_condition_evaluates_and_renders_for_argo():
    condition = parse_condition(
        "not (evaluate.auc < 0.9) and (evaluate.loss <= 1 or params.x == 2)"
    )
    values = {("evaluate", "auc"): 0.95, ("evaluate", "loss"): 3.0, ("params", "x"): 2.0}
    assert condition.evaluate(values.__getitem__) is True
    assert condition.evaluate({**values, ("params", "x"): 1.0}.__getitem__) is False
    assert condition.references() == [("evaluate", "auc"), ("evaluate", "loss"), ("params", "x")]
    assert condition.render(lambda r: "{{" + ".".join(r) + "}}") == (
        "!({{evaluate.auc}} < 0.9) && ({{evaluate.loss}} <= 1 || {{params.x}} == 2)"
    )


def test_references_are_substituted_keeping_their_type():
    outputs = {("train", "run_id"): "r-1", ("evaluate", "metrics"): {"auc": 0.9}}
    assert substitute(
        {
            "run": "${train.run_id}",
            "m": "${ evaluate.metrics }",
            "cmd": ["--run=${train.run_id}", 3],
        },
        outputs.__getitem__,
    ) == {"run": "r-1", "m": {"auc": 0.9}, "cmd": ["--run=r-1", 3]}


def test_a_run_gives_only_declared_parameters_and_every_one_without_a_default():
    from services.pipelines.domain import InvalidRunParameters, check_run_parameters

    definition = parse_definition(
        {"parameters": {"threshold": 0.9, "model": None}, "stages": [stage("train", "train")]}
    )
    check_run_parameters(definition, {"model": "m-1"})
    with pytest.raises(InvalidRunParameters) as err:
        check_run_parameters(definition, {"threshold": 0.5, "colour": "red"})
    assert err.value.to_dict()["problems"] == [
        "'colour' is not a parameter of the pipeline",
        "'model' has no default, so the run must give it",
    ]


def test_promotions_to_production_without_an_approve_stage_before_them_are_named():
    assert unapproved_promotions(parse_definition(release_pipeline())) == []
    straight = {
        "parameters": {"target": "staging"},
        "stages": [
            stage("staging", "promote", parameters={"version_id": "v", "stage": "staging"}),
            stage("production", "promote", parameters={"version_id": "v", "stage": "production"}),
            stage("chosen", "promote", parameters={"version_id": "v", "stage": "${params.target}"}),
            stage("approve", "approve"),
            stage(
                "after", "promote", "approve", parameters={"version_id": "v", "stage": "production"}
            ),
        ],
    }
    assert unapproved_promotions(parse_definition(straight)) == ["production", "chosen"]
