"""Validate a NodeLab document as the Kubernetes API server would, without a cluster.

Three steps, in the API server's order: structural defaulting, OpenAPI schema validation (unknown
fields rejected, as ``kubectl apply`` does with strict field validation), then the CEL rules in
``x-kubernetes-validations``, evaluated with cel-python. Errors name the field the way
``kubectl`` prints them, e.g. ``spec.node.workers: Invalid value: 0: should be at least 1``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import celpy
import celpy.adapter
import celpy.celtypes
import jsonschema

__all__ = ["FieldError", "SpecInvalid", "apply_defaults", "validate_object"]


@dataclass(frozen=True)
class FieldError:
    """One invalid field: its path (``spec.load.rate``) and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecInvalid(ValueError):
    """A NodeLab that the API server would refuse; ``errors`` lists every invalid field."""

    def __init__(self, name: str, errors: list[FieldError]) -> None:
        self.name = name
        self.errors = errors
        details = "; ".join(str(e) for e in errors)
        super().__init__(f'NodeLab "{name}" is invalid: {details}')


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """Return a copy of ``obj`` with the schema's ``default`` values filled in, recursively."""
    result = copy.deepcopy(obj)
    _default_in_place(result, schema)
    return result


def _default_in_place(obj: Any, schema: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                _default_in_place(obj[key], sub)
    elif isinstance(obj, list) and "items" in schema:
        for item in obj:
            _default_in_place(item, schema["items"])


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema into a strict JSON Schema (draft 4)."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if "items" in schema:
        out["items"] = _strict(schema["items"])
    return out


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> Iterator[FieldError]:
    validator = jsonschema.Draft4Validator(_strict(schema))
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
        where = _path(error.absolute_path)
        if error.validator == "additionalProperties":
            declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            extra = sorted(set(error.instance) - set(declared))
            for name in extra:
                yield FieldError(_path([*error.absolute_path, name]), "unknown field")
        elif error.validator == "required":
            missing = error.message.split("'")[1]
            yield FieldError(_path([*error.absolute_path, missing]), "Required value")
        else:
            yield FieldError(
                where or "<root>", f"Invalid value: {error.instance!r}: {_reason(error)}"
            )


def _reason(error: jsonschema.ValidationError) -> str:
    value: Any = error.validator_value
    schema: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
    match error.validator:
        case "minimum" if schema.get("exclusiveMinimum") is True:
            return f"should be greater than {value}"
        case "minimum":
            return f"should be greater than or equal to {value}"
        case "maximum":
            return f"should be less than or equal to {value}"
        case "exclusiveMinimum":
            return f"should be greater than {schema.get('minimum')}"
        case "maxItems":
            return f"must have at most {value} items"
        case "maxLength":
            return f"may not be longer than {value}"
        case "pattern":
            return f"should match '{value}'"
        case "enum":
            return f"supported values: {', '.join(map(str, value))}"
        case "type":
            return f"must be of type {value}"
    return str(error.message)


def _cel_errors(obj: Any, schema: dict[str, Any], path: str) -> Iterator[FieldError]:
    """Evaluate every ``x-kubernetes-validations`` rule below ``schema`` against ``obj``.

    As the API server does on create: there is no old object, so a transition rule (one using
    ``oldSelf``) runs only with ``optionalOldSelf``, where ``oldSelf.hasValue()`` is false.
    """
    if obj is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        if _OLD_SELF.search(rule["rule"]) and not rule.get("optionalOldSelf"):
            continue
        if not _cel_holds(rule["rule"], obj):
            field = path + rule.get("fieldPath", "")
            yield FieldError(field or "<root>", f"Invalid value: {rule['message']}")
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in obj:
                yield from _cel_errors(obj[key], sub, f"{path}.{key}" if path else key)
    elif isinstance(obj, list) and "items" in schema:
        for index, item in enumerate(obj):
            yield from _cel_errors(item, schema["items"], f"{path}[{index}]")


class _NoOldSelf(celpy.celtypes.MapType):
    """``oldSelf`` on create: a CEL optional holding no value (cel-python has no optionals)."""


_OLD_SELF = re.compile(r"\boldSelf\b")


def _has_value(optional: Any) -> celpy.celtypes.BoolType:
    return celpy.celtypes.BoolType(not isinstance(optional, _NoOldSelf))


def _cel_holds(rule: str, value: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule), functions={"hasValue": _has_value})
    activation = {"self": celpy.adapter.json_to_cel(value), "oldSelf": _NoOldSelf()}
    return bool(program.evaluate(activation))


def validate_object(obj: dict[str, Any], schema: dict[str, Any]) -> list[FieldError]:
    """Return every error the API server would report for ``obj`` (already defaulted).

    CEL rules only run on a schema-valid object, as in the API server, so that a rule never
    sees a field of the wrong type.
    """
    errors = list(_schema_errors(obj, schema))
    if errors:
        return errors
    return list(_cel_errors(_cel_typed(obj, schema), schema, ""))


def _cel_typed(obj: Any, schema: dict[str, Any]) -> Any:
    """``obj`` with every ``number`` field a float, as the API server types it for CEL.

    YAML's ``5`` in a ``number`` field is a CEL double on the server, and CEL has no arithmetic
    mixing int and double: left an int here, ``self.a + self.b`` would fail offline only.
    """
    if schema.get("type") == "number" and isinstance(obj, int) and not isinstance(obj, bool):
        return float(obj)
    if isinstance(obj, dict):
        properties = schema.get("properties", {})
        return {k: _cel_typed(v, properties[k]) if k in properties else v for k, v in obj.items()}
    if isinstance(obj, list) and "items" in schema:
        return [_cel_typed(item, schema["items"]) for item in obj]
    return obj
