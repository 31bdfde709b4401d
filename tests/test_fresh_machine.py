"""README's test command alone sets up a fresh machine (issue 11 item 17): it installs the
browser test's system packages when they are missing, then the Python packages, then runs
pytest; `.ci/run` runs the same command. Checked with stand-ins for apt-get, pip and pytest
(a real run would change this machine).

Which Python it installs into (issue 23 item 12: a fresh Debian or Ubuntu has only `python3`,
whose pip refuses to install, PEP 668): the active environment, else a `python` / `python3`
whose pip may install, else a virtual environment it makes; `--dry-run` says which and stops."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Run the tests.*?```bash\n(.*?)```", text, re.S)
    assert m, "README has no 'Run the tests' code block"
    lines = [line for line in m.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def python_stub(path: Path, log: Path, probe: str = "ok venv", name: str = "python") -> None:
    """A stand-in Python: answers run_tests.sh's probe (``-c CODE``) with ``probe`` (what the
    probe prints: "ok" when pip may install, else why not; "venv" when it can make one), logs
    every other call as "NAME ARGS", and for ``-m venv --clear DIR`` makes DIR a virtual
    environment whose bin/python is a stand-in that may install (logged as "venv-python")."""
    venv_python = path.parent / f".{path.name}-venv-python"
    venv_python.write_text(f'#!/bin/sh\n[ "$1" = -c ] && echo "ok venv" && exit 0\necho "venv-python $*" >> "{log}"\n')
    path.write_text(f'''#!/bin/sh
[ "$1" = -c ] && echo "{probe}" && exit 0
echo "{name} $*" >> "{log}"
if [ "$1 $2 $3" = "-m venv --clear" ]; then
  mkdir -p "$4/bin" && : > "$4/pyvenv.cfg" && cat "{venv_python}" > "$4/bin/python" && chmod 755 "$4/bin/python"
fi
''')
    path.chmod(0o755)


def _fake_machine(tmp_path, has_chromium: bool, has_fonts: bool) -> tuple[dict, Path]:
    """A PATH with basic tools plus logging stand-ins: apt-get, python (pip / pytest), fc-list, chromium."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "grep", "env", "cat", "mkdir", "chmod"):
        real = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        assert real, tool
        (bin_dir / tool).symlink_to(real)

    def stub(name, body=""):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\n')
        (bin_dir / name).chmod(0o755)

    stub("apt-get")
    stub("sudo", 'exec "$@"')
    python_stub(bin_dir / "python", log)
    fonts = "echo '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc: Noto Sans CJK JP'" if has_fonts else ""
    (bin_dir / "fc-list").write_text(f"#!/bin/sh\n{fonts}\n")
    (bin_dir / "fc-list").chmod(0o755)
    if has_chromium:
        stub("chromium")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return env, log


def _run(command, env, args=""):
    proc = subprocess.run(["/bin/bash", "-c", command + args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_readme_test_command_sets_up_a_fresh_machine(tmp_path):
    env, log = _fake_machine(tmp_path, has_chromium=False, has_fonts=False)
    _run(readme_test_command(), env)
    calls = log.read_text().splitlines()
    apt = [c for c in calls if c.startswith("apt-get")]
    assert any(c.startswith("apt-get install") and "chromium" in c and "fonts-noto-cjk" in c for c in apt), calls
    pip = next(i for i, c in enumerate(calls) if c.startswith("python -m pip install"))
    pytest_call = next(i for i, c in enumerate(calls) if c.startswith("python -m pytest"))
    assert calls.index(apt[-1]) < pip < pytest_call
    assert "-r requirements.txt" in calls[pip] and "-e .[test]" in calls[pip]
    assert calls[pytest_call] == "python -m pytest"  # the whole suite, slow and browser tests included


def test_readme_test_command_installs_nothing_already_there(tmp_path):
    env, log = _fake_machine(tmp_path, has_chromium=True, has_fonts=True)
    _run(readme_test_command(), env, ' -m "not browser"')
    calls = log.read_text().splitlines()
    assert not any(c.startswith("apt-get") for c in calls), calls
    assert calls[-1] == "python -m pytest -m not browser"


def test_readme_test_command_uses_sudo_when_not_root(tmp_path):
    env, log = _fake_machine(tmp_path, has_chromium=True, has_fonts=False)
    fake_id = Path(env["PATH"]) / "id"
    fake_id.unlink()
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    _run(readme_test_command(), env)
    calls = log.read_text().splitlines()
    assert any(c.startswith("sudo env DEBIAN_FRONTEND=noninteractive apt-get install") and c.endswith("fonts-noto-cjk")
               for c in calls), calls
    assert not any("chromium" in c for c in calls if "apt-get" in c)


def test_ci_runs_the_readme_command():
    ci = (ROOT / ".ci" / "run").read_text()
    script = readme_test_command().split()[0]
    assert script in ci.replace("exec ", "")


# ----------------------------------------------------------------------------- which Python
def _only(tmp_path, python3_probe: str | None = None) -> tuple[dict, Path]:
    """A machine whose PATH has python3 and no python: the real interpreter running these tests
    (``python3_probe`` None) or a stand-in answering the probe so; the browser's packages there."""
    env, log = _fake_machine(tmp_path, has_chromium=True, has_fonts=True)
    bin_dir = Path(env["PATH"])
    (bin_dir / "python").unlink()
    if python3_probe is None:  # a wrapper, not a symlink: a virtual environment's python stays in it
        (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / "python3").chmod(0o755)
    else:
        python_stub(bin_dir / "python3", log, python3_probe, name="python3")
    env["CCR_TEST_VENV"] = str(tmp_path / "venv")
    return env, log


def _dry_run(env) -> str:
    return _run("./run_tests.sh --dry-run", env).stderr


def test_a_python3_whose_pip_may_install_is_used(tmp_path):
    """PATH with python3 alone (no `python`, which the script called before: rc 127)."""
    env, log = _only(tmp_path)
    out = _dry_run(env)
    assert "Python: python3 on PATH" in out and "whose pip may install" in out, out
    assert "system packages to install: none" in out
    assert not (tmp_path / "venv").exists() and not log.exists()  # --dry-run changes nothing


def test_an_externally_managed_python3_gets_a_virtual_environment(tmp_path):
    env, log = _only(tmp_path, "externally-managed venv")
    venv = tmp_path / "venv"
    out = _dry_run(env)
    assert f"a new virtual environment {venv}, made with python3" in out and "externally-managed" in out, out
    assert not venv.exists() and not log.exists()
    _run(readme_test_command(), env, " -q")
    calls = log.read_text().splitlines()
    assert calls == [f"python3 -m venv --clear {venv}", "venv-python -m pip install -q -r requirements.txt -e .[test]",
                     "venv-python -m pytest -q"], calls
    out = _run(readme_test_command(), env).stderr  # the next run takes the one it made
    assert f"Python: the virtual environment {venv} (made by an earlier run)" in out
    assert log.read_text().splitlines()[3:] == ["venv-python -m pip install -q -r requirements.txt -e .[test]",
                                                "venv-python -m pytest"]


def test_python3_venv_comes_from_apt_when_ensurepip_is_missing(tmp_path):
    """Debian's python3 makes no virtual environment with pip until python3-venv is installed."""
    env, log = _only(tmp_path, "externally-managed no-venv")
    assert "system packages to install: python3-venv" in _dry_run(env)
    _run(readme_test_command(), env)
    calls = log.read_text().splitlines()
    apt = calls.index("apt-get install -y -qq python3-venv")
    assert calls.index(f"python3 -m venv --clear {tmp_path / 'venv'}") > apt, calls


def test_the_active_environment_comes_first(tmp_path):
    env, log = _only(tmp_path)
    active = tmp_path / "active"
    (active / "bin").mkdir(parents=True)
    python_stub(active / "bin" / "python", log, name="active-python")
    env["VIRTUAL_ENV"] = str(active)
    assert f"Python: the active environment {active}" in _dry_run(env)
    _run(readme_test_command(), env)
    assert log.read_text().splitlines() == ["active-python -m pip install -q -r requirements.txt -e .[test]",
                                            "active-python -m pytest"]


def test_no_python_at_all_installs_the_systems(tmp_path):
    env, _ = _only(tmp_path, "ok venv")
    (Path(env["PATH"]) / "python3").unlink()
    out = _dry_run(env)
    assert "system packages to install: python3 python3-venv" in out and "made with the system's python3" in out
