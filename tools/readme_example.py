#!/usr/bin/env python3
"""Prints the code block that follows `<!-- readme-LANG-example -->` in README.md, so the tests
compile exactly what the README shows. Usage: readme_example.py kotlin|swift [PREFIX_LINE]"""
import pathlib
import sys

lang = sys.argv[1]
text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
marker = f"<!-- readme-{lang}-example -->"
if marker not in text:
    sys.exit(f"README.md has no {marker}")
block = text.split(marker, 1)[1].split("```", 2)[1]
code = block.split("\n", 1)[1]  # drop the ```lang line
if len(sys.argv) > 2:
    print(sys.argv[2])
print(code, end="")
