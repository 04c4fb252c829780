"""DynamoDB Local as npm installs it (local/package-lock.json) and as the stack runs it: on this
machine's Java, 17 or later, with nothing of Node.js but npm having installed it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from local.prerequisites import check_java, check_npm
from local.processes import DynamoDBLocal, dynamodb_local_dir

# The class file version of Java 17.
JAVA_17_CLASS_FILE = 61


def test_this_machine_has_what_the_local_stack_needs() -> None:
    assert check_java()
    assert check_npm()


def test_the_locked_dynamodb_local_runs_on_java_17() -> None:
    # The jar's main class, as class file version: what `java` checks before it runs anything.
    with zipfile.ZipFile(dynamodb_local_dir() / "DynamoDBLocal.jar") as jar:
        # A manifest folds long lines, going on after a newline and a space.
        manifest = jar.read("META-INF/MANIFEST.MF").decode().replace("\r\n", "\n").replace("\n ", "")
        main_class = manifest.split("Main-Class:")[1].split()[0]
        header = jar.read(main_class.replace(".", "/") + ".class")[:8]

    assert header[:4] == b"\xca\xfe\xba\xbe"
    assert int.from_bytes(header[6:8], "big") <= JAVA_17_CLASS_FILE


def test_dynamodb_local_runs_on_java_without_node() -> None:
    # The package's `engines` (a newer Node.js than 20) speaks for its JavaScript wrapper, which
    # the stack never loads: it starts the jar itself.
    command = DynamoDBLocal().command()

    assert Path(command[0]).name == "java"
    assert not any(Path(part).name == "node" for part in command)
