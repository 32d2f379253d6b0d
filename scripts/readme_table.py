#!/usr/bin/env python3
"""Puts a generated table into README.md: replaces everything from `<!-- NAME:start` to
`<!-- NAME:end -->` with the table read from standard input (which carries both markers).

usage: ... | python3 scripts/readme_table.py NAME"""
import re
import sys


def main():
    name = sys.argv[1]
    table = sys.stdin.read().strip()
    readme = open("README.md").read()
    pattern = re.compile(rf"<!-- {name}:start.*?<!-- {name}:end -->", re.S)
    if not pattern.search(readme):
        sys.exit(f"README.md has no {name} markers")
    open("README.md", "w").write(pattern.sub(lambda _: table, readme))


if __name__ == "__main__":
    main()
