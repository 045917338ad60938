"""params.yaml in the editor: the shipped JSON Schema is current, and it accepts the default and
every preset and refuses what the pydantic models refuse."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from transferlab.config.schema import params_schema, yaml_comments

from conftest import ROOT, tiny_params

SHIPPED = ROOT / "params.schema.json"
FILES = [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


def test_the_shipped_schema_is_current():
    fresh = params_schema((ROOT / "params.yaml").read_text())
    assert json.loads(SHIPPED.read_text()) == fresh, "params.schema.json is stale: run `transferlab schema`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_default_and_every_preset_validate_and_name_the_schema(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SHIPPED.read_text()))
    first = path.read_text().splitlines()[0]
    schema = "params.schema.json" if path.parent == ROOT else "../params.schema.json"
    assert first == f"# yaml-language-server: $schema={schema}"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.update(bogus=1),  # an unknown key
        lambda p: p["train"].update(epochs="ten"),  # a wrong type
        lambda p: p["train"].update(epochs=0),  # out of bounds
        lambda p: p["model"].update(widht=0.5),  # a misspelt key in a section
    ],
    ids=["unknown-key", "wrong-type", "out-of-bounds", "misspelt-nested-key"],
)
def test_a_mutated_file_is_refused(mutate):
    params = tiny_params()
    mutate(params)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(params, json.loads(SHIPPED.read_text()))


def test_descriptions_are_the_comments_of_params_yaml():
    comments = yaml_comments((ROOT / "params.yaml").read_text())
    schema = json.loads(SHIPPED.read_text())
    assert schema["properties"]["threads"]["description"] == comments["threads"]
    assert comments["data.synthetic.num_classes"].startswith("first half")
    assert schema["properties"]["data"]["properties"]["storage"]["description"].startswith("tensor: decode once")
