#!/usr/bin/env python3
"""Prints the code block that follows a `<!-- readme-… -->` marker in README.md, so the tests
compile exactly what the README shows.

Usage: readme_example.py kotlin|swift|MARKER [PREFIX_LINE]
  kotlin, swift: the block after `<!-- readme-kotlin-example -->` / `<!-- readme-swift-example -->`;
  MARKER: the block after `<!-- MARKER -->`, e.g. `readme-kotlin-download`.
PREFIX_LINE, if given, is printed first (e.g. a Kotlin `package` line)."""
import pathlib
import sys

name = sys.argv[1]
marker = f"<!-- readme-{name}-example -->" if name in ("kotlin", "swift") else f"<!-- {name} -->"
text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
if marker not in text:
    sys.exit(f"README.md has no {marker}")
block = text.split(marker, 1)[1].split("```", 2)[1]
code = block.split("\n", 1)[1]  # drop the ```lang line
if len(sys.argv) > 2:
    print(sys.argv[2])
print(code, end="")
