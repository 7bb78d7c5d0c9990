"""Read-only dicts and lists for finished traces: what ``end_trace`` returned stays as it was.

``FrozenDict`` and ``FrozenList`` subclass ``dict`` and ``list`` so they compare equal to
plain ones, are serialised natively by orjson and read exactly like JSON values; every
method that would change them raises ``TypeError``, and they hash by content. ``freeze``
converts a JSON-shaped value deeply (scalars as they are), sharing nothing mutable with its
input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NoReturn

__all__ = ["EMPTY", "FrozenDict", "FrozenList", "freeze", "freeze_mapping"]

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(f"a finished trace cannot be changed: {type(self).__name__} is read-only")


class FrozenDict(dict[str, Any]):
    """A dict that refuses every change (a finished trace's tags and attributes)."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> FrozenDict:
        self = dict.__new__(cls)
        dict.__init__(self, *args, **kwargs)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Filled by ``__new__``: calling ``__init__`` again (``dict.__init__`` would
        update the dict in place) changes nothing."""

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        """Hashable, as a frozen value should be (a finished ``Trace`` is hashed through it)."""
        return hash(frozenset(dict.items(self)))

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return dict.__repr__(self)


class FrozenList(list[Any]):
    """A list that refuses every change (nested values of a finished trace)."""

    __slots__ = ()

    def __new__(cls, *args: Any) -> FrozenList:
        self = list.__new__(cls)
        list.__init__(self, *args)
        return self

    def __init__(self, *args: Any) -> None:
        """Filled by ``__new__``: calling ``__init__`` again (``list.__init__`` would
        replace the items in place) changes nothing."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __repr__(self) -> str:
        return list.__repr__(self)


EMPTY: Final = FrozenDict()

# Filling a new instance through dict's and list's own C methods skips the Python
# ``__new__``/``__init__`` above (two calls into Python): ~2.5x faster per frozen value.
_new_dict = dict.__new__
_fill_dict = dict.update
_new_list = list.__new__
_fill_list = list.extend


def _frozen_dict(values: Mapping[str, Any]) -> FrozenDict:
    frozen = _new_dict(FrozenDict)
    _fill_dict(frozen, values)
    return frozen


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON-shaped value; scalars and frozen values as they are."""
    cls = type(value)
    if cls in _SCALARS or cls is FrozenDict or cls is FrozenList:
        return value
    if cls is dict or isinstance(value, Mapping):
        return freeze_mapping(value)
    if cls is list or cls is tuple or isinstance(value, list):
        frozen = _new_list(FrozenList)
        _fill_list(frozen, [freeze(item) for item in value])
        return frozen
    return value


def freeze_mapping(values: Mapping[str, Any]) -> FrozenDict:
    """A read-only copy of a mapping (the converter of every mapping field of a trace)."""
    if type(values) is FrozenDict:
        return values
    if not values:
        return EMPTY
    for value in values.values():
        if type(value) not in _SCALARS:
            return _frozen_dict({key: freeze(value) for key, value in values.items()})
    return _frozen_dict(values)
