"""The type stubs describe the module as it is: every class and method of one is in the
other."""

import ast
from pathlib import Path

import shmval
from shmval import _shmval


def stub_classes():
    path = Path(shmval.__file__).with_name("_shmval.pyi")
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return out


def test_every_class_and_method_is_in_the_stubs():
    stubs = stub_classes()
    runtime = {n for n in dir(_shmval) if isinstance(getattr(_shmval, n), type)}
    assert runtime == set(stubs)
    for name, methods in stubs.items():
        cls = getattr(_shmval, name)
        public = {m for m in vars(cls) if not m.startswith("_")}
        if issubclass(cls, Exception):
            continue
        assert public == {m for m in methods if not m.startswith("_")}, name
        for m in methods:
            assert hasattr(cls, m), f"{name}.{m} is in the stubs only"


def test_everything_has_a_docstring():
    for name in shmval.__all__:
        assert getattr(shmval, name).__doc__, name
