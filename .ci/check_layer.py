"""Checks that a built Lambda layer holds only arm64 (aarch64) binaries built for CPython 3.13.

Usage: python .ci/check_layer.py .aws-sam/build/CommonLayer
"""

from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183
# CPython extension tags: cpython-313-<arch>-linux-gnu, or the stable ABI (abi3).
EXTENSION_TAG = re.compile(r"\.(cpython-(?P<version>\d+)-(?P<arch>[a-z0-9_]+)-linux-gnu|abi3)\.so$")


def _wheel_tag_fits(tag: str) -> bool:
    """Pure Python (py3-none-any), or a binary wheel for CPython 3.13 (or the stable ABI) on aarch64."""
    python, abi, platform = tag.split("-", 2)
    if abi == "none" and platform == "any":
        return True
    return (python == "cp313" or abi == "abi3") and "aarch64" in platform


def problems_in(layer: Path) -> tuple[int, list[str]]:
    checked, problems = 0, []
    for path in sorted(layer.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as handle:
            header = handle.read(20)
        if not header.startswith(ELF_MAGIC):
            continue
        checked += 1
        name = path.relative_to(layer)
        (machine,) = struct.unpack("<H", header[18:20])
        if machine != EM_AARCH64:
            problems.append(f"{name}: ELF machine {machine}, not aarch64 ({EM_AARCH64})")
        tag = EXTENSION_TAG.search(path.name)
        if path.suffix == ".so" and tag and tag.group("version") not in (None, "313"):
            problems.append(f"{name}: built for CPython {tag.group('version')}, not 3.13")
        if tag and tag.group("arch") not in (None, "aarch64"):
            problems.append(f"{name}: tagged for {tag.group('arch')}")
    for info in layer.rglob("*.dist-info/WHEEL"):
        for line in info.read_text().splitlines():
            if line.startswith("Tag:") and not _wheel_tag_fits(line[4:].strip()):
                problems.append(f"{info.parent.name}: wheel tag {line[4:].strip()}")
    return checked, problems


def main() -> int:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: check_layer.py BUILT_LAYER_DIR (run `make build` first)", file=sys.stderr)
        return 2
    checked, problems = problems_in(Path(sys.argv[1]))
    if checked == 0:
        print(f"check_layer: no native binaries found under {sys.argv[1]}; is that the built layer?", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"check_layer: {problem}", file=sys.stderr)
    print(f"check_layer: {checked} native binaries checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
