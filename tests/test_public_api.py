"""The public surface: __all__ matches what degarble exports, and importing it stays light."""

import inspect
import subprocess
import sys

import pytest

import degarble


def test_all_matches_exports():
    public = {n for n in dir(degarble) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if inspect.ismodule(getattr(degarble, n))}
    assert set(degarble.__all__) - {"__version__"} == public - modules


def test_contract_signatures():
    # new options go last, so that positional calls keep working
    assert list(inspect.signature(degarble.detect).parameters) == ["text", "model", "threshold"]
    assert list(inspect.signature(degarble.restore).parameters) == ["text", "model", "greedy", "alternatives", "min_score",
                                                                    "threshold"]
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


def test_the_cyclic_collector_is_paused_inside_calls_and_restored_after():
    import gc
    import threading

    from degarble.model import _collector_paused

    was = gc.isenabled()
    try:
        gc.enable()
        with _collector_paused():
            assert not gc.isenabled()
            with _collector_paused():  # nested (a restore's detect): still off, and on only at the outer exit
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled()
        with pytest.raises(RuntimeError), _collector_paused():
            raise RuntimeError("a failed call")
        assert gc.isenabled()
        # a caller who turned the collector off keeps it off
        gc.disable()
        with _collector_paused():
            pass
        assert not gc.isenabled()
        # two threads overlapping: on again only when the last one leaves
        gc.enable()
        inside, leave = threading.Event(), threading.Event()

        def other():
            with _collector_paused():
                inside.set()
                leave.wait(5)

        t = threading.Thread(target=other)
        with _collector_paused():
            t.start()
            inside.wait(5)
        assert not gc.isenabled()  # the other thread is still inside
        leave.set()
        t.join(5)
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
