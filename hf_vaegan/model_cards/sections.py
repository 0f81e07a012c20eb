"""Sections added to a model card after training (evaluations, fitted heads), replaced rather than repeated."""

import re
import shlex
import sys
from pathlib import Path


def replace_card_section(readme: str | Path, title: str, section: str) -> None:
    """Write ``section`` (Markdown starting with the ``## title`` line) at the end of ``readme``, removing any earlier
    section of that title, so that running a script again updates its figures instead of appending them twice."""
    readme = Path(readme)
    text = readme.read_text() if readme.is_file() else ""
    text = re.sub(rf"\n{re.escape(title)}\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
    readme.write_text(f"{text}\n\n{section.strip()}\n")


def command_block(script: str) -> str:
    """The Markdown that ends such a section: ``Command:`` and a bash block with ``python <script>`` and this
    process's arguments, the command that wrote (and rewrites) the section."""
    command = shlex.join(["python", script, *sys.argv[1:]])
    return f"Command:\n\n```bash\n{command}\n```"
