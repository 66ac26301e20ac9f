"""rag outside the repo: a wheel built from this checkout, installed into a fresh venv, serves
the chat page and the JSON API for a notes folder anywhere, its index in the user's cache.

The fresh venv borrows the dependencies of .venv (a .pth line: no download, no torch build);
rag itself comes from the wheel, which the test checks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
from test_app import _clean_env, _free_port, _wait_for_port

ROOT = Path(__file__).resolve().parent.parent
NOTE = """# Garden

## Tomatoes

- Water tomatoes every second morning in July.
- Tomato seedlings go out after the last frost, in mid May.
"""


def _venv_with_rag(tmp: Path) -> Path:
    src, wheels = tmp / "src", tmp / "wheels"  # a copy: setuptools writes build/ beside it
    shutil.copytree(ROOT / "rag", src / "rag", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(wheels), str(src)],
        check=True,
        cwd=tmp,
    )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("rag-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + [str(wheel)],
        check=True,
    )
    return venv


def test_an_installed_rag_serves_any_notes_folder(tmp_path: Path):
    venv = _venv_with_rag(tmp_path)
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import rag.cli; print(rag.cli.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv)), where  # the wheel's rag, not this checkout's

    vault, elsewhere, cache = tmp_path / "My Vault", tmp_path / "elsewhere", tmp_path / "cache"
    vault.mkdir()
    elsewhere.mkdir()
    (vault / "garden.md").write_text(NOTE, encoding="utf-8")
    port, log = _free_port(), tmp_path / "serve.log"
    env = {**_clean_env(), "XDG_CACHE_HOME": str(cache)}
    argv = [venv / "bin" / "rag", "serve", "--notes", str(vault), "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=elsewhere, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, log)
        question = {"question": "how often do I water the tomatoes?"}
        answer = httpx.post(f"http://127.0.0.1:{port}/api/ask", json=question, timeout=60).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert answer["status"] == "answered", answer
    cited = answer["citations"][0]
    assert (cited["path"], cited["start_line"]) == ("garden.md", 5)
    assert cited["uri"] == f"vscode://file{(vault / 'garden.md').resolve()}:5".replace(" ", "%20")
    assert not (elsewhere / "index").exists()  # nothing written where rag was started
    assert len(list((cache / "rag").glob("My-Vault-*/index/CURRENT"))) == 1
