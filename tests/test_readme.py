"""The README's snippets run as written, and its Quickstart holds exactly two commands."""

import re
from pathlib import Path

README = (Path(__file__).parents[1] / "README.md").read_text()


def section(title: str) -> str:
    return re.search(rf"^## {title}\n(.*?)(?=^## )", README, re.DOTALL | re.MULTILINE).group(1)


def test_quickstart_has_exactly_two_commands_and_make_defines_them():
    block = re.search(r"```bash\n(.*?)```", section("Quickstart"), re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert len(commands) == 2
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    for command in commands:
        target = command.removeprefix("make ").split()[0]
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), command


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "make test\n" in ci and "make test" in section("Quickstart")


def test_usage_snippets_run(tmp_path, run_python):
    snippets = re.findall(r"```python\n(.*?)```", section("Usage"), re.DOTALL)
    assert len(snippets) >= 4
    run_python("-c", "\n".join(snippets), cwd=tmp_path)
