"""The AWS::LanguageExtensions transform as CloudFormation applies it before the SAM transform:
every `Fn::ForEach` loop expanded, and every `Fn::FindInMap` whose keys are known resolved.

template.yaml declares each provider's queues, secret, role, alarms and dashboard once, in loops.
The local stack, the template's tests and the IaC scanners all read it through `expand`, so none of
them can see a different set of resources than the one CloudFormation deploys.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRANSFORM = "AWS::LanguageExtensions"
FOR_EACH = "Fn::ForEach::"
# The sections Fn::ForEach may appear in.
SECTIONS = ("Conditions", "Resources", "Outputs")


class TemplateError(Exception):
    """The template asks for something the local stack cannot provide."""


def uses_language_extensions(document: Mapping[str, Any]) -> bool:
    transform = document.get("Transform")
    return TRANSFORM in (transform if isinstance(transform, list) else [transform])


def substitute(value: Any, identifier: str, item: str) -> Any:
    """One loop iteration's fragment: `${Identifier}` becomes the item, `&{Identifier}` the item
    without its non-alphanumeric characters (for logical ids), and `{"Ref": Identifier}` the item."""
    if isinstance(value, str):
        alphanumeric = re.sub(r"[^0-9A-Za-z]", "", item)
        return value.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", alphanumeric)
    if isinstance(value, list):
        return [substitute(v, identifier, item) for v in value]
    if isinstance(value, dict):
        if value == {"Ref": identifier}:
            return item
        return {substitute(k, identifier, item): substitute(v, identifier, item) for k, v in value.items()}
    return value


_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def _inline_known(value: dict[str, Any]) -> Any:
    """An `Fn::Sub` with what is known before deployment substituted: a string once nothing is left,
    the short form once its variables are all used. A value holding `${` stays a variable: Sub does
    not read its variables' values again."""
    if set(value) != {"Fn::Sub"} or not isinstance(value["Fn::Sub"], list) or len(value["Fn::Sub"]) != 2:
        return value
    text, variables = value["Fn::Sub"]
    if not (isinstance(text, str) and isinstance(variables, dict)):
        return value
    known = {k: v for k, v in variables.items() if isinstance(v, str) and "${" not in v}
    text = _VARIABLE.sub(lambda m: known.get(m.group(1), m.group(0)), text)
    rest = {k: v for k, v in variables.items() if k not in known}
    return {"Fn::Sub": [text, rest] if rest else text}


def _literal(value: Any) -> str | None:
    """A string known before deployment: plain, or an `Fn::Sub` left with nothing to substitute."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text: str = value["Fn::Sub"]
        return None if _VARIABLE.search(text) else text.replace("${!", "${")
    return None


class _Expansion:
    def __init__(self, mappings: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self._mappings = mappings
        self._parameters = parameters

    def walk(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Fn::FindInMap"}:
            return self._find_in_map(value["Fn::FindInMap"])
        walked: dict[str, Any] = {}
        for key, item in value.items():
            generated = self._loop(key, item) if key.startswith(FOR_EACH) else {key: self.walk(item)}
            for name, fragment in generated.items():
                if name in walked:
                    raise TemplateError(f"{key}: {name} is declared twice")
                walked[name] = fragment
        walked = _inline_known(walked)
        literal = _literal(walked)
        return walked if literal is None else literal

    def _loop(self, key: str, loop: Any) -> dict[str, Any]:
        if not (isinstance(loop, list) and len(loop) == 3 and isinstance(loop[0], str) and isinstance(loop[2], dict)):
            raise TemplateError(f"{key}: expected [identifier, collection, fragment]")
        identifier, collection, fragment = loop
        generated: dict[str, Any] = {}
        for item in self._collection(key, collection):
            for name, value in self.walk(substitute(fragment, identifier, item)).items():
                if name in generated:
                    raise TemplateError(f"{key}: {name} is generated twice")
                generated[name] = value
        return generated

    def _collection(self, key: str, collection: Any) -> list[str]:
        collection = self.walk(collection)
        if isinstance(collection, dict) and isinstance(collection.get("Ref"), str) and len(collection) == 1:
            if collection["Ref"] not in self._parameters:
                raise TemplateError(f"{key}: the collection names {collection['Ref']}, which has no value")
            collection = [part.strip() for part in self._parameters[collection["Ref"]].split(",")]
        if not isinstance(collection, list) or not all(isinstance(i, (str, int, float)) for i in collection):
            raise TemplateError(f"{key}: the collection must be a list of strings, got {collection!r}")
        return [str(item) for item in collection]

    def _find_in_map(self, arguments: Any) -> Any:
        arguments = self.walk(arguments)
        if not (isinstance(arguments, list) and len(arguments) in (3, 4)):
            raise TemplateError(f"Fn::FindInMap takes a map, two keys and an optional default: {arguments!r}")
        keys = [key for key in map(_literal, arguments[:3]) if key is not None]
        if len(keys) < 3:
            # A key known only once deployed (a parameter, the region): the Resolver looks it up then.
            return {"Fn::FindInMap": arguments}
        name, top, second = keys
        try:
            return copy.deepcopy(self._mappings[name][top][second])
        except (KeyError, TypeError):
            if len(arguments) == 4 and isinstance(arguments[3], dict) and "DefaultValue" in arguments[3]:
                return arguments[3]["DefaultValue"]
            raise TemplateError(f"Fn::FindInMap: Mappings has no {name}.{top}.{second}") from None


def expand(document: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template CloudFormation hands to the SAM transform. `parameters` are the values a
    collection written as `!Ref Parameter` (a CommaDelimitedList) iterates over."""
    expanded = copy.deepcopy(dict(document))
    if not uses_language_extensions(document):
        if FOR_EACH in json.dumps({s: document.get(s) for s in SECTIONS}, default=str):
            raise TemplateError(f"Fn::ForEach needs the {TRANSFORM} transform")
        return expanded
    expansion = _Expansion(document.get("Mappings") or {}, parameters or {})
    for section in SECTIONS:
        if section in expanded:
            expanded[section] = expansion.walk(expanded[section])
    return expanded


def main(argv: list[str] | None = None) -> int:
    """`python -m local.language_extensions template.yaml`: the expanded template as JSON, for
    tools that do not expand Fn::ForEach themselves (checkov)."""
    from local.template import load_document

    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m local.language_extensions TEMPLATE", file=sys.stderr)
        return 2
    json.dump(load_document(Path(arguments[0])), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
