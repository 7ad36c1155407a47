"""The public API: __all__ names exactly what users import from mocksim."""

from __future__ import annotations

import mocksim


def test_all_is_sorted_and_matches_the_namespace() -> None:
    assert list(mocksim.__all__) == sorted(mocksim.__all__, key=lambda n: (not n.isupper(), n))
    public = {n for n in dir(mocksim) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(mocksim, n)).__name__ == "module"}
    assert public - modules == set(mocksim.__all__)


def test_every_public_name_has_a_docstring() -> None:
    for name in mocksim.__all__:
        obj = getattr(mocksim, name)
        if callable(obj):
            assert obj.__doc__, name
