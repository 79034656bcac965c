"""CI runs the README's test command, in a fresh virtualenv: the two must not drift apart."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_test_command():
    """The command in the fenced block that follows "Run the tests:" in the README."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"Run the tests:\s*```bash\n(.+?)\n```", text, re.S)
    assert match, "README.md has no 'Run the tests:' block"
    (command,) = match.group(1).strip().splitlines()
    return command


def test_ci_runs_exactly_the_readme_test_command_in_a_fresh_virtualenv():
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert lines[-1] == readme_test_command()
    # ... after creating and activating a new virtualenv in a temporary folder
    assert any(re.search(r"-m venv \"\$venv\"", line) for line in lines)
    assert 'source "$venv/bin/activate"' in lines
    assert any("mktemp -d" in line for line in lines)
