"""The public surface: __all__ matches what degarble exports, and importing it stays light."""

import inspect
import subprocess
import sys

import degarble


def test_all_matches_exports():
    public = {n for n in dir(degarble) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if inspect.ismodule(getattr(degarble, n))}
    assert set(degarble.__all__) - {"__version__"} == public - modules


def test_contract_signatures():
    assert list(inspect.signature(degarble.detect).parameters) == ["text", "model"]
    assert list(inspect.signature(degarble.restore).parameters) == ["text", "model", "greedy"]
    assert list(inspect.signature(degarble.spin).parameters)[:4] == ["text", "rate", "seed", "profile"]
    assert degarble.Detection.__dataclass_fields__.keys() >= {"spun_score", "is_spun", "spans"}
    assert degarble.Edit.__dataclass_fields__.keys() >= {"start", "end", "before", "after", "score"}


def test_import_does_not_load_torch():
    code = "import sys, degarble; degarble.spin('The meeting was held.'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "degarble", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and degarble.__version__ in out.stdout
