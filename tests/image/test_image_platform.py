from __future__ import annotations

import pytest

from dockyard.image import ImageFormatError, Platform


@pytest.mark.parametrize(
    ("text", "os", "arch", "variant"),
    [
        ("linux/amd64", "linux", "amd64", None),
        ("linux/arm64/v8", "linux", "arm64", "v8"),
        ("linux/arm/v7", "linux", "arm", "v7"),
        ("windows/amd64", "windows", "amd64", None),
        ("linux/arm64/v8.2", "linux", "arm64", "v8.2"),
        ("Linux/AMD64", "Linux", "AMD64", None),  # kept as given; compare normalized
    ],
)
def test_parse_str_round_trip(
    text: str, os: str, arch: str, variant: str | None
) -> None:
    p = Platform.parse(text)
    assert (p.os, p.architecture, p.variant) == (os, arch, variant)
    assert str(p) == text


@pytest.mark.parametrize(
    "bad", ["", "linux", "linux/", "/amd64", "linux/amd64/v8/x", "linux/am d64"]
)
def test_parse_invalid(bad: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        Platform.parse(bad)
    assert (
        str(info.value) == f'invalid platform "{bad}": want os/arch or os/arch/variant'
    )


# given | normalized
NORMALIZE = """
linux/amd64        | linux/amd64
linux/x86_64       | linux/amd64
linux/x86-64       | linux/amd64
linux/amd64/v1     | linux/amd64
linux/amd64/v3     | linux/amd64/v3
linux/i386         | linux/386
linux/aarch64      | linux/arm64
linux/arm64/v8     | linux/arm64
linux/arm64/8      | linux/arm64
linux/arm64/v8.0   | linux/arm64
linux/arm64/v8.2   | linux/arm64/v8.2
linux/arm64/9      | linux/arm64/v9
linux/arm          | linux/arm/v7
linux/arm/7        | linux/arm/v7
linux/arm/6        | linux/arm/v6
linux/armhf        | linux/arm/v7
linux/armel        | linux/arm/v6
macos/arm64        | darwin/arm64
LINUX/AMD64        | linux/amd64
linux/ppc64le      | linux/ppc64le
linux/s390x        | linux/s390x
"""


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        tuple(c.strip() for c in line.split("|"))
        for line in NORMALIZE.strip().splitlines()
    ],
)
def test_normalized(given: str, normalized: str) -> None:
    assert str(Platform.parse(given).normalized()) == normalized


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64/v8", "linux/aarch64", True),
        ("linux/arm", "linux/arm/v7", True),
        ("linux/amd64", "linux/amd64/v1", True),
        ("linux/amd64", "linux/x86_64", True),
        ("linux/amd64", "linux/amd64/v2", False),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm64", "linux/arm/v8", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/amd64", "linux/386", False),
    ],
)
def test_matches_is_symmetric(a: str, b: str, match: bool) -> None:
    pa, pb = Platform.parse(a), Platform.parse(b)
    assert pa.matches(pb) is match
    assert pb.matches(pa) is match


@pytest.mark.parametrize(
    ("given", "order"),
    [
        ("linux/amd64", "linux/amd64 linux/386"),
        ("linux/amd64/v3", "linux/amd64/v3 linux/amd64/v2 linux/amd64 linux/386"),
        ("linux/arm/v7", "linux/arm/v7 linux/arm/v6 linux/arm/v5"),
        ("linux/arm/v5", "linux/arm/v5"),
        (
            "linux/arm64",
            "linux/arm64 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5",
        ),
        (
            "linux/arm64/v8.2",
            (
                "linux/arm64/v8.2 linux/arm64/v8.1 linux/arm64 linux/arm/v8 linux/arm/v7 "
                "linux/arm/v6 linux/arm/v5"
            ),
        ),
        (
            "linux/arm64/v9",
            (
                "linux/arm64/v9 linux/arm64/v8.5 linux/arm64/v8.4 linux/arm64/v8.3 "
                "linux/arm64/v8.2 linux/arm64/v8.1 linux/arm64 linux/arm/v8 linux/arm/v7 "
                "linux/arm/v6 linux/arm/v5"
            ),
        ),
        ("linux/riscv64", "linux/riscv64"),
    ],
)
def test_compatible_order(given: str, order: str) -> None:
    assert " ".join(str(p) for p in Platform.parse(given).compatible()) == order


@pytest.mark.parametrize(
    ("machine", "system", "expected"),
    [
        ("x86_64", "Linux", "linux/amd64"),
        ("AMD64", "Windows", "windows/amd64"),
        ("aarch64", "Linux", "linux/arm64/v8"),
        ("arm64", "Darwin", "darwin/arm64/v8"),
        ("armv7l", "Linux", "linux/arm/v7"),
        ("armv6l", "Linux", "linux/arm/v6"),
        ("i686", "Linux", "linux/386"),
        ("ppc64le", "Linux", "linux/ppc64le"),
        ("s390x", "Linux", "linux/s390x"),
        ("riscv64", "Linux", "linux/riscv64"),
        ("mips64el", "Linux", "linux/mips64le"),
    ],
)
def test_host(machine: str, system: str, expected: str) -> None:
    assert str(Platform.host(machine, system)) == expected


def test_host_defaults_to_this_machine() -> None:
    p = Platform.host()
    assert p.os and p.architecture
    assert p.matches(p)


def test_json_round_trip() -> None:
    p = Platform("windows", "amd64", os_version="10.0.17763.1", os_features=("win32k",))
    doc = p.to_json()
    assert list(doc) == ["architecture", "os", "os.version", "os.features"]
    assert Platform.from_json(doc) == p
    assert Platform.from_json(
        {"architecture": "arm64", "os": "linux", "variant": "v8"}
    ) == (Platform.parse("linux/arm64/v8"))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("linux", 'platform: must be a JSON object, got "linux"'),
        ({"os": "linux"}, 'platform: missing required field "architecture"'),
        ({"architecture": "amd64"}, 'platform: missing required field "os"'),
        (
            {"architecture": 1, "os": "linux"},
            "platform.architecture: must be a string, got 1",
        ),
        (
            {"architecture": "amd64", "os": "linux", "os.features": "x"},
            'platform.os.features: must be an array of strings, got "x"',
        ),
        (
            {"architecture": "", "os": "linux"},
            "platform: architecture and os must not be empty",
        ),
    ],
)
def test_from_json_errors(doc: object, message: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        Platform.from_json(doc)
    assert str(info.value) == message
