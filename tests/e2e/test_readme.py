"""The documentation kept true: the README's curls, run against a stack started as `make run` starts
it, answer what the README shows; the status tables name every error code the gateway and API
Gateway answer; every relative link of README.md and docs/*.md leads to a file (and heading) that
exists, and every repository path they name is there."""

from __future__ import annotations

import ast
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import LocalStack

REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "README.md"
DOCUMENTS = [README, *sorted((REPOSITORY / "docs").glob("*.md"))]
SMSGW = REPOSITORY / "layers" / "shared" / "smsgw"
# Where the README's curls send: `make run`'s default port.
README_API = "http://127.0.0.1:3000"
# What differs from one run to the next: ids and times.
VOLATILE = frozenset({"request_id", "message_id", "received_at", "finished_at", "retry_after"})
STATUS_SECTION = "Statuses and errors"
# The documents that hold the complete table of statuses and error codes.
STATUS_TABLES = [README, REPOSITORY / "docs" / "api.md"]

_FENCE = re.compile(r"^(`{3,})([^`\n]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def relative(path: Path) -> str:
    return str(path.relative_to(REPOSITORY))


# -- Markdown ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string, its text and the line its fence opens on."""

    info: str
    text: str
    line: int


def fenced_blocks(markdown: str) -> list[Block]:
    return [Block(m[2].strip(), m[3], markdown.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(markdown)]


def prose(markdown: str) -> str:
    """The text outside fenced code blocks, with the same line numbers."""
    return _FENCE.sub(lambda m: "\n" * m[0].count("\n"), markdown)


def section(markdown: str, title: str) -> str:
    """The text under a heading, up to the next heading of its level or above."""
    text = prose(markdown)
    headings = list(_HEADING.finditer(text))
    for index, heading in enumerate(headings):
        if heading[2] == title:
            level = len(heading[1])
            end = next((h.start() for h in headings[index + 1 :] if len(h[1]) <= level), len(text))
            return text[heading.end() : end]
    raise AssertionError(f"no heading {title!r}")


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for heading in _HEADING.finditer(prose(path.read_text())):
        base = anchor = slug(heading[2])
        number = 0
        while anchor in found:
            number += 1
            anchor = f"{base}-{number}"
        found.add(anchor)
    return found


# -- The README's curls -----------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """A curl the README shows, and the answer it shows for it."""

    command: str
    answer: dict[str, Any]
    line: int


def readme_examples() -> list[Example]:
    """Each ```bash block that is a curl to the local stack, with the ```json block that follows it."""
    blocks = fenced_blocks(README.read_text())
    found = []
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        command = block.text.replace("\\\n", " ").strip()
        if block.info != "bash" or not command.startswith("curl ") or README_API not in command:
            continue
        assert "\n" not in command, f"README.md:{block.line}: one curl per block, so that one answer goes with it"
        assert following is not None, f"README.md:{block.line}: the curl has no answer after it"
        assert following.info == "json", f"README.md:{block.line}: the block after the curl is not ```json"
        found.append(Example(command, json.loads(following.text), block.line))
    return found


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def parse_curl(command: str) -> Call:
    """The request a curl command line makes, for the options the README uses; any other is refused."""
    words = iter(shlex.split(command))
    assert next(words) == "curl"
    method, headers, data, urls = None, {}, None, []
    for word in words:
        if word in {"-s", "-S", "-sS", "-Ss", "--silent", "--show-error"}:
            continue
        if word in {"-X", "--request"}:
            method = next(words)
        elif word in {"-H", "--header"}:
            name, _, value = next(words).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif word in {"-d", "--data", "--data-raw"}:
            data = next(words)
        elif word.startswith("-"):
            raise AssertionError(f"curl option {word} is not one this test reads")
        else:
            urls.append(word)
    assert len(urls) == 1, f"one URL per curl, not {urls}"
    body = None if data is None else data.encode()
    return Call(method or ("GET" if body is None else "POST"), urls[0], headers, body)


def documented_statuses() -> dict[str, int]:
    """Error code -> HTTP status, from the README's table."""
    statuses = {}
    for row in section(README.read_text(), STATUS_SECTION).splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if row.startswith("|") and len(cells) >= 2:
            numbers = re.findall(r"`(\d{3})`", cells[0])
            for code in re.findall(r"`([a-z_]+)`", cells[1]):
                assert len(numbers) == 1, f"the README gives {code} more than one status"
                statuses[code] = int(numbers[0])
    return statuses


def differences(documented: Any, actual: Any, where: str = "answer") -> list[str]:
    """Where an answer departs from the README's: other keys, other values (ids and times aside)."""
    if isinstance(documented, dict) and isinstance(actual, dict):
        found = []
        if set(documented) != set(actual):
            found.append(f"{where}: keys {sorted(documented)} in the README, {sorted(actual)} in the answer")
        for key in documented.keys() & actual.keys() - VOLATILE:
            found += differences(documented[key], actual[key], f"{where}.{key}")
        return found
    if isinstance(documented, list) and isinstance(actual, list) and len(documented) == len(actual):
        return [
            d
            for i, pair in enumerate(zip(documented, actual, strict=True))
            for d in differences(*pair, f"{where}[{i}]")
        ]
    if documented != actual:
        return [f"{where}: {documented!r} in the README, {actual!r} in the answer"]
    return []


def test_the_readme_shows_a_send_and_a_message_lookup() -> None:
    routes = [parse_curl(e.command).url.removeprefix(README_API) for e in readme_examples()]

    assert any(r.endswith("/messages") and r.startswith("/v1/") for r in routes), routes
    assert any(r.startswith("/v1/messages/") for r in routes), routes


def test_the_readme_curls_answer_as_shown(readme_stack: LocalStack) -> None:
    statuses = documented_statuses()
    # The ids the README shows, as this run has them: a later curl names an earlier answer's id.
    ids: dict[str, str] = {}
    for example in readme_examples():
        command = example.command.replace(README_API, readme_stack.api_url)
        for shown, real in ids.items():
            command = command.replace(shown, real)
        call = parse_curl(command)
        assert call.headers.get("x-api-key", readme_stack.api_key) == readme_stack.api_key, "not make run's API key"

        answer = requests.request(call.method, call.url, headers=call.headers, data=call.body, timeout=60)

        error = example.answer.get("error")
        expected = statuses[error["code"]] if isinstance(error, dict) else 200
        assert answer.status_code == expected, f"README.md:{example.line}: {answer.text}"
        body = answer.json()
        assert differences(example.answer, body) == [], f"README.md:{example.line}"
        if "request_id" in example.answer:
            ids[example.answer["request_id"]] = body["request_id"]


# -- The status tables ------------------------------------------------------------------------


def _text(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def answered_codes() -> tuple[set[str], set[str]]:
    """The error codes the gateway's code can answer, and the detail types of its own body checks:
    `code = "…"` in a GatewayError subclass, `ErrorInfo(code="…")`, `error_response(status, "…")`
    and the body checks' `_invalid(field, "…", …)`."""
    found: dict[str, set[str | None]] = {"codes": set(), "details": set()}
    for path in SMSGW.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found["codes"].update(
                    _text(s.value)
                    for s in node.body
                    if isinstance(s, ast.Assign) and [getattr(t, "id", None) for t in s.targets] == ["code"]
                )
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", None)
                if name == "ErrorInfo":
                    found["codes"].update(_text(k.value) for k in node.keywords if k.arg == "code")
                if name in {"error_response", "_invalid"} and len(node.args) > 1:
                    found["codes" if name == "error_response" else "details"].add(_text(node.args[1]))
    codes, details = ({c for c in found[kind] if c is not None} for kind in ("codes", "details"))
    return codes, details


def gateway_response_codes() -> set[str]:
    """The codes of API Gateway's own answers, as template.yaml shapes them."""
    return set(re.findall(r"application/json: .*?\"code\": \"([a-z_]+)\"", (REPOSITORY / "template.yaml").read_text()))


@pytest.mark.parametrize("document", STATUS_TABLES, ids=relative)
def test_the_status_table_names_every_code_the_api_answers(document: Path) -> None:
    codes, details = answered_codes()
    gateway = gateway_response_codes()
    # The collection itself still finds what it looks for.
    assert {"invalid_request", "quota_exceeded", "record_incomplete", "payload_too_large"} <= codes
    assert {"json_invalid", "json_duplicate_key", "utf8_invalid"} <= details
    assert {"invalid_api_key", "route_not_found", "throttled", "api_quota_exceeded"} <= gateway
    text = section(document.read_text(), STATUS_SECTION)
    named = set(_CODE_SPAN.findall(text))
    tabled = {
        code
        for row in text.splitlines()
        if row.startswith("|")
        for code in re.findall(r"`([a-z_]+)`", row.split("|")[2])
    }

    assert (codes | details | gateway) - named == set()
    # And no code the gateway no longer answers.
    assert tabled - codes - gateway == set()


# -- Links and paths --------------------------------------------------------------------------


def links() -> Iterator[tuple[Path, str, int]]:
    for document in DOCUMENTS:
        text = prose(document.read_text())
        for link in _LINK.finditer(text):
            target = link[1]
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: …
                yield document, target, text.count("\n", 0, link.start()) + 1


def named_paths() -> Iterator[tuple[Path, str, int]]:
    """Repository paths the documents name in code spans (`layers/shared/smsgw/api.py`, `template.yaml`)."""
    top = {p.name for p in REPOSITORY.iterdir() if not p.name.startswith(".")}
    for document in DOCUMENTS:
        text = prose(document.read_text())
        for span in _CODE_SPAN.finditer(text):
            path = re.split(r"::|:\d", span[1])[0].rstrip("/")
            parts = path.split("/")
            if (
                parts[0] in top
                and re.fullmatch(r"[\w./-]+", path)
                and not any(p.startswith(".") for p in parts)
                and ("/" in path or (REPOSITORY / path).is_file())
            ):
                yield document, path, text.count("\n", 0, span.start()) + 1


@pytest.mark.parametrize(
    ("document", "target", "line"), list(links()), ids=lambda v: relative(v) if isinstance(v, Path) else str(v)
)
def test_a_relative_link_leads_to_a_file_and_heading_that_exist(document: Path, target: str, line: int) -> None:
    path, _, anchor = target.partition("#")
    linked = (document.parent / path).resolve() if path else document
    where = f"{relative(document)}:{line}: {target}"

    assert linked.exists(), f"{where}: no such file"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{where}: no such heading"


@pytest.mark.parametrize(
    ("document", "path", "line"), list(named_paths()), ids=lambda v: relative(v) if isinstance(v, Path) else str(v)
)
def test_a_path_the_documents_name_exists(document: Path, path: str, line: int) -> None:
    assert (REPOSITORY / path).exists(), f"{relative(document)}:{line}: {path} does not exist"
