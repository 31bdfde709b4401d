"""README's test command alone sets up a fresh machine (issue 11 item 17): it installs the
browser test's system packages when they are missing, then the Python packages, then runs
pytest; `.ci/run` runs the same command. Checked with stand-ins for apt-get, pip and pytest
(a real run would change this machine)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Run the tests.*?```bash\n(.*?)```", text, re.S)
    assert m, "README has no 'Run the tests' code block"
    lines = [line for line in m.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def _fake_machine(tmp_path, has_chromium: bool, has_fonts: bool) -> tuple[dict, Path]:
    """A PATH with basic tools plus logging stand-ins: apt-get, python (pip / pytest), fc-list, chromium."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "grep", "env", "cat"):
        real = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        assert real, tool
        (bin_dir / tool).symlink_to(real)

    def stub(name, body=""):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\n')
        (bin_dir / name).chmod(0o755)

    stub("apt-get")
    stub("sudo", 'exec "$@"')
    stub("python")
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
