"""Figure 6, sizes of what `sam build` produces: the layer and each function package, unzipped and
zipped (deflate, as `sam deploy` uploads them)."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.inprocess import log
from bench.stack import REPOSITORY
from local.template import load_document

BUILD_DIR = REPOSITORY / ".aws-sam" / "build"
SAM = REPOSITORY / ".venv-tools" / "bin" / "sam"


def template_artifacts(template: Path) -> list[str]:
    """The logical ids `sam build` makes a folder for: functions and layers, the loops expanded."""
    resources = load_document(template)["Resources"]
    kinds = ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion")
    return sorted(name for name, spec in resources.items() if spec.get("Type") in kinds)


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for root in paths:
        files = (
            [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def ensure_build(log_file: Path) -> tuple[Path, bool]:
    """`.aws-sam/build`, built again when missing or older than the template or the code."""
    template = REPOSITORY / "template.yaml"
    artifacts = template_artifacts(template)
    built = BUILD_DIR / "template.yaml"
    missing = [a for a in artifacts if not (BUILD_DIR / a).is_dir()]
    sources = [template, REPOSITORY / "layers", REPOSITORY / "functions"]
    stale = built.exists() and _newest(sources) > built.stat().st_mtime
    if built.exists() and not missing and not stale:
        return BUILD_DIR, False
    log(f"sam build ({'stale' if stale else 'missing: ' + ', '.join(missing or ['template'])})")
    env = os.environ | {"SAM_CLI_TELEMETRY": "0"}
    command = [str(SAM), "build", "--template", "template.yaml", "--build-dir", ".aws-sam/build"]
    with log_file.open("wb") as output:
        subprocess.run(command, cwd=REPOSITORY, env=env, check=True, stdout=output, stderr=output)  # noqa: S603
    return BUILD_DIR, True


@dataclass(frozen=True)
class Size:
    name: str
    files: int
    unzipped: int
    zipped: int
    required_by: str = ""
    """For an entry of the layer: what brings it in."""


def measure(folder: Path, name: str | None = None) -> Size:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder))
    return Size(name or folder.name, len(files), sum(p.stat().st_size for p in files), len(buffer.getvalue()))


def _name(requirement: str) -> str:
    requirement = requirement.strip()
    for stop in ";[<>=!~ (":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-")


def brought_in_by(layer: Path) -> dict[str, str]:
    """Top-level entry of the layer -> what requires it, read from the layer's own metadata
    (an extra counts only where layers/shared/requirements.txt asks for it)."""
    direct: dict[str, set[str]] = {}
    for line in (REPOSITORY / "layers" / "shared" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            extras = line.split("[", 1)[1].split("]")[0] if "[" in line else ""
            direct[_name(line)] = {e.strip() for e in extras.split(",") if e.strip()}
    owners: dict[str, str] = {}
    requirers: dict[str, list[str]] = {}
    for info in sorted(layer.glob("*.dist-info")):
        metadata = (info / "METADATA").read_text(errors="replace").split("\n\n")[0]
        name = next(line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Name:"))
        for line in metadata.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = line.split(":", 1)[1]
            extra = requirement.split("extra ==")[1].strip(" '\"") if "extra ==" in requirement else None
            if extra is not None and extra not in direct.get(_name(name), set()):
                continue
            requirers.setdefault(_name(requirement), []).append(f"{name}[{extra}]" if extra else name)
        for row in (info / "RECORD").read_text().splitlines():
            top = row.split(",")[0].split("/")[0]
            if top and not top.endswith((".dist-info", ".data")) and top != "..":
                owners.setdefault(top, _name(name))
    present = set(owners.values())
    answer = {}
    for top, dist in owners.items():
        users = sorted({u for u in requirers.get(dist, []) if _name(u) in present})
        answer[top] = ", ".join(["layers/shared/requirements.txt", *users] if dist in direct else users)
    answer["smsgw"] = "the gateway's own code"
    return answer


def sizes(build_dir: Path) -> tuple[list[Size], list[Size]]:
    """(every artifact, the layer's ten largest top-level entries)."""
    artifacts = [measure(build_dir / a) for a in template_artifacts(REPOSITORY / "template.yaml")]
    layer = build_dir / "SharedLayer" / "python"
    why = brought_in_by(layer)
    entries = []
    for path in layer.iterdir():
        if path.name.endswith((".dist-info", ".data")):
            continue
        found = measure(path, path.name) if path.is_dir() else Size(path.name, 1, path.stat().st_size, 0)
        entries.append(Size(found.name, found.files, found.unzipped, found.zipped, why.get(path.name, "")))
    entries.sort(key=lambda s: s.unzipped, reverse=True)
    return artifacts, entries[:10]
