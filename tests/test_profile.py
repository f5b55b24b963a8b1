"""The phase profile (calad_lib.profile): nested phases count once, and the chapter's file is written as it goes."""
import json
import time

import pytest

from calad_lib import profile


def test_nested_phases_count_for_the_inner_one_only():
    with profile.collect() as seconds:
        with profile.phase("training"):
            time.sleep(0.02)
            with profile.phase("evaluation"):
                time.sleep(0.03)
            time.sleep(0.02)
    assert seconds["evaluation"] == pytest.approx(0.03, abs=0.02)
    assert seconds["training"] == pytest.approx(0.04, abs=0.02)
    assert seconds["calibration"] == 0.0


def test_unknown_phase_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown phase 'trainig'; choose one of data, training"):
        with profile.phase("trainig"):
            pass


def test_chapter_profile_is_written_after_each_outermost_phase(tmp_path, monkeypatch):
    """A kernel stopped before its exit hooks (as one that started worker processes can be) keeps its profile."""
    monkeypatch.setenv("CALAD_PROFILE", str(tmp_path))
    monkeypatch.setattr(profile, "_target", [])
    path = profile.dump_at_exit("99_test")
    assert path == tmp_path / "99_test.json" and not path.exists()
    with profile.phase("plotting"):
        with profile.phase("data"):
            pass
        assert not path.exists()               # written when the outermost phase ends, not inside it
    data = json.loads(path.read_text())
    assert set(data["phases"]) == set(profile.PHASES) and data["wall"] > 0


def test_no_profile_without_the_variable(monkeypatch):
    monkeypatch.delenv("CALAD_PROFILE", raising=False)
    assert profile.dump_at_exit("99_test") is None


def test_phases_of_worker_processes_reach_the_chapter_profile(tmp_path, monkeypatch):
    """Runs done on worker processes add their phases to the chapter's file, apart from its own."""
    import calad_lib as calad
    from calad_lib.runs.store import ResultStore

    monkeypatch.setenv("CALAD_PROFILE", str(tmp_path / "profile"))
    monkeypatch.setattr(profile, "_target", [])
    monkeypatch.setattr(profile, "_workers", dict.fromkeys(profile.PHASES, 0.0))
    path = profile.dump_at_exit("99_test")
    before = profile.totals()["plotting"]
    store = ResultStore(tmp_path / "store", columns=("value",))
    calad.runs.run_all([{"seed": s, "sleep": 0.2} for s in range(2)], _sleep_in_plotting, store=store,
                       engine="processes", workers=2, progress=False)
    data = json.loads(path.read_text())
    assert data["workers"]["plotting"] == pytest.approx(0.4, abs=0.2)
    assert data["phases"]["plotting"] == pytest.approx(before, abs=0.01)   # not in this process


def _sleep_in_plotting(config):
    with profile.phase("plotting"):
        time.sleep(config["sleep"])
    return [{"value": config["seed"]}]
