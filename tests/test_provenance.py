"""Provenance: the commit a number was produced by, and when a checkout counts as changed."""
from __future__ import annotations

import subprocess

import pytest

from calad_lib import provenance


@pytest.fixture
def repo(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"old")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_a.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "01_a.md").write_text("# A\n")
    git("add", ".")
    git("commit", "-qm", "init")
    monkeypatch.setattr(provenance, "repo_root", lambda: tmp_path)
    monkeypatch.delenv("CALAD_COMMIT", raising=False)
    provenance.git_commit.cache_clear()
    yield tmp_path
    provenance.git_commit.cache_clear()


def test_rewritten_figures_do_not_mark_the_checkout_dirty(repo):
    clean = provenance.git_commit()
    assert len(clean) == 10 and not clean.endswith("+dirty")
    (repo / "figures" / "a.png").write_bytes(b"rewritten by a book build")
    provenance.git_commit.cache_clear()
    assert provenance.git_commit() == clean


def test_refreshed_notebook_twins_do_not_mark_it_dirty_but_their_sources_do(repo):
    clean = provenance.git_commit()
    (repo / "notebooks" / "01_a.ipynb").write_text('{"cells": []}')
    provenance.git_commit.cache_clear()
    assert provenance.git_commit() == clean
    (repo / "notebooks" / "01_a.md").write_text("# A, edited\n")
    provenance.git_commit.cache_clear()
    assert provenance.git_commit().endswith("+dirty")


def test_a_changed_source_marks_it_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    assert provenance.git_commit().endswith("+dirty")


def test_stamp_carries_preset_commit_and_date(repo, monkeypatch):
    monkeypatch.setenv("CALAD_PRESET", "smoke")
    s = provenance.stamp()
    assert s["preset"] == "smoke" and s["commit"] == provenance.git_commit() and len(s["date"]) == 10


def test_code_fingerprint_sees_code_but_not_comments_or_docstrings(tmp_path, monkeypatch):
    pkg = tmp_path / "fpmod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""A package."""\nfrom .a import f\n')
    (pkg / "a.py").write_text('def f(x):\n    """Double."""\n    return 2 * x  # twice\n')
    monkeypatch.syspath_prepend(str(tmp_path))

    def fp():
        provenance.code_fingerprint.cache_clear()
        return provenance.code_fingerprint("fpmod")

    first = fp()
    (pkg / "a.py").write_text('def f(x):\n    """Twice x, reworded."""\n\n    return 2 * x   # a new comment\n')
    assert fp() == first
    (pkg / "a.py").write_text('def f(x):\n    return 3 * x\n')
    assert fp() != first
    with pytest.raises(ValueError, match="no module"):
        provenance.code_fingerprint("no_such_module_here")


def test_a_change_to_the_trainer_code_retires_cached_models(monkeypatch):
    import torch

    from calad_lib import train

    cfg = train.TrainConfig(loss="svdd", dataset="fashion_mnist", epochs=1)
    x = torch.zeros(4, 1, 28, 28)
    before = train.cache_path(cfg, x)
    monkeypatch.setattr(train, "code_fingerprint", lambda *m: "0123456789ab")
    assert train.cache_path(cfg, x) != before
