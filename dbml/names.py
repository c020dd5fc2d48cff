"""The names users give models, aliases and versions, checked where they enter dbml
(SQL, the Python API, an imported file's metadata). Nothing here touches a database."""

from __future__ import annotations

import re

from dbml.errors import DbmlError, InvalidNameError

__all__ = ["check_model_name", "check_alias_name", "check_version", "parse_reference"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# name, 'name:3', 'name@alias': the alias part has the shape check_alias_name accepts
_REFERENCE = re.compile(r"^\s*([^:@\s]+)\s*(?::\s*(\d{1,10})|@\s*([A-Za-z_][A-Za-z0-9_]{0,62}))?\s*$")
_INT32 = 2**31 - 1


def check_model_name(name: str) -> str:
    """Validate a model name and return it in lower case (names are case-insensitive).

    Raises:
        InvalidNameError: unless the name is a plain identifier of at most 63 characters.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidNameError(
            f"model name {name!r} is not a valid identifier: use letters, digits and _ "
            "(not starting with a digit), at most 63 characters"
        )
    return name.lower()


def check_alias_name(alias: str) -> str:
    """Validate an alias name (the same rule as model names) and return it in lower case.

    Raises:
        InvalidNameError: unless the alias is a plain identifier of at most 63 characters.
    """
    if not isinstance(alias, str) or not _NAME.match(alias):
        shown = repr(alias) if len(repr(alias)) <= 80 else repr(alias)[:77] + "..."
        raise InvalidNameError(
            f"alias name {shown} is not a valid identifier: use letters, digits and _ "
            "(not starting with a digit), at most 63 characters"
        )
    return alias.lower()


def check_version(version: object, what: str = "version") -> int:
    """A version number: a whole number from 1 (not a bool, not a string).

    Raises:
        DbmlError: naming the value.
    """
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= _INT32:
        raise DbmlError(f"{what} must be a whole number from 1 to {_INT32}, got {version!r} ({type(version).__name__})")
    return version


def parse_reference(ref: str) -> tuple[str, int | None, str | None]:
    """'churn' -> (churn, None, None); 'churn:3' -> (churn, 3, None); 'churn@prod' -> (churn, None, prod)."""
    m = _REFERENCE.match(ref) if isinstance(ref, str) else None
    if not m:
        shown = repr(ref) if len(repr(ref)) <= 80 else repr(ref)[:77] + "..."
        raise InvalidNameError(f"model reference {shown} is not of the form name, 'name:version' or 'name@alias'")
    version = check_version(int(m.group(2)), f"the version in model reference {ref!r}") if m.group(2) else None
    return check_model_name(m.group(1)), version, check_alias_name(m.group(3)) if m.group(3) else None
