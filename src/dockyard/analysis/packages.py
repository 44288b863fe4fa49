"""Installed packages, read from the package databases found in an image:
dpkg's status file (and the per-package files of distroless images), apk's
installed database and Python distributions (``*.dist-info/METADATA``,
``*.egg-info/PKG-INFO``).

Only the database files are read; they are captured during the layer scan
(``is_package_db``), so finding packages costs no second pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.parser import HeaderParser
from urllib.parse import quote

from .scan import Entry

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")

_PY_META = re.compile(r"(^|/)[^/]+\.(dist-info/METADATA|egg-info/PKG-INFO)$")
_PY_EGG_FILE = re.compile(r"(^|/)(site|dist)-packages/[^/]+\.egg-info$")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    type: str  # deb, apk, python
    purl: str
    location: str  # the database file it was read from
    layer: int  # the layer that wrote that file
    arch: str = ""
    license: str = ""  # as the database states it
    supplier: str = ""
    homepage: str = ""
    description: str = ""
    source: str = ""  # the source package, when it differs
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.type, self.name


def is_package_db(path: str) -> bool:
    """Whether the layer scan should keep this file's contents."""
    return (path in (DPKG_STATUS, APK_INSTALLED) or path in OS_RELEASE
            or (path.startswith(DPKG_STATUS_D) and "/" not in path[len(DPKG_STATUS_D):])
            or bool(_PY_META.search(path)) or bool(_PY_EGG_FILE.search(path)))


def find_packages(files: dict[str, Entry]) -> list[Package]:
    """Every package recorded in the merged view ``files``, sorted by type and name."""
    distro = os_release(files)
    out: list[Package] = []
    for path in sorted(files):
        entry = files[path]
        if entry.kind != "file" or entry.data is None:
            continue
        text = entry.data.decode("utf-8", "replace")
        if path == DPKG_STATUS or path.startswith(DPKG_STATUS_D):
            out.extend(parse_dpkg_status(text, path, entry.layer, distro))
        elif path == APK_INSTALLED:
            out.extend(parse_apk_installed(text, path, entry.layer, distro))
        elif _PY_META.search(path) or _PY_EGG_FILE.search(path):
            pkg = parse_python_metadata(text, path, entry.layer)
            if pkg is not None:
                out.append(pkg)
    unique = {(p.type, p.name, p.version, p.location): p for p in out}
    return sorted(unique.values(), key=lambda p: (p.type, p.name.lower(), p.version, p.location))


def os_release(files: dict[str, Entry]) -> dict[str, str]:
    """/etc/os-release as a dict ({} when absent); a symlink to the /usr/lib copy is followed."""
    for path in OS_RELEASE:
        entry = files.get(path)
        if entry is not None and entry.kind == "symlink":
            target = entry.link if entry.link.startswith("/") else "etc/" + entry.link
            entry = files.get(_normpath(target))
        if entry is not None and entry.data is not None:
            return _parse_os_release(entry.data.decode("utf-8", "replace"))
    return {}


def _normpath(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip("\"'")
    return out


def _stanzas(text: str) -> list[dict[str, str]]:
    """Deb822-style paragraphs: 'Field: value', continuation lines indented."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last is not None:
            current[last] += "\n" + line.strip()
        else:
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip()
                current[last] = value.strip()
    if current:
        out.append(current)
    return out


def purl(kind: str, namespace: str, name: str, version: str, qualifiers: dict[str, str]) -> str:
    """A package URL (pkg:type/namespace/name@version?qualifiers)."""
    def enc(s: str) -> str:
        return quote(s, safe=".-_~")

    text = f"pkg:{kind}/" + (f"{enc(namespace)}/" if namespace else "") + enc(name)
    if version:
        text += "@" + enc(version)
    quals = "&".join(f"{k}={enc(v)}" for k, v in sorted(qualifiers.items()) if v)
    return text + ("?" + quals if quals else "")


_APK_DISTROS = ("alpine", "wolfi", "chainguard", "postmarketos")


def _namespace(distro: dict[str, str], family: str) -> tuple[str, str]:
    """(purl namespace, distro qualifier) for a deb or apk package: the image's
    distribution when it belongs to that family, else the family's origin."""
    ident, version = distro.get("ID", ""), distro.get("VERSION_ID", "")
    like = f"{ident} {distro.get('ID_LIKE', '')}".split()
    ours = ("debian" in like or "ubuntu" in like) if family == "deb" else \
        any(d in like for d in _APK_DISTROS)
    if not ident or not ours:
        return ("debian" if family == "deb" else "alpine"), ""
    return ident, f"{ident}-{version}" if version else ident


def parse_dpkg_status(text: str, location: str, layer: int, distro: dict[str, str]) -> list[Package]:
    vendor, distro_q = _namespace(distro, "deb")
    out = []
    for st in _stanzas(text):
        name = st.get("Package")
        status = st.get("Status", "install ok installed").split()
        if not name or (len(status) == 3 and status[2] not in ("installed", "half-configured")):
            continue
        version = st.get("Version", "")
        arch = st.get("Architecture", "")
        source = st.get("Source", "")
        src_name = source.split(" ")[0] if source else ""
        quals = {"arch": arch, "distro": distro_q}
        out.append(Package(
            name=name, version=version, type="deb", location=location, layer=layer, arch=arch,
            purl=purl("deb", vendor, name, version, quals), supplier=st.get("Maintainer", ""),
            homepage=st.get("Homepage", ""), description=st.get("Description", "").split("\n")[0],
            source=src_name if src_name != name else "",
            extra={"installed_size_kib": st.get("Installed-Size", "")}))
    return out


def parse_apk_installed(text: str, location: str, layer: int, distro: dict[str, str]) -> list[Package]:
    vendor, distro_q = _namespace(distro, "apk")
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":" and line[0] not in fields:
                fields[line[0]] = line[2:].strip()
        name = fields.get("P")
        if not name:
            continue
        version, arch, origin = fields.get("V", ""), fields.get("A", ""), fields.get("o", "")
        quals = {"arch": arch, "distro": distro_q}
        out.append(Package(
            name=name, version=version, type="apk", location=location, layer=layer, arch=arch,
            purl=purl("apk", vendor, name, version, quals), license=fields.get("L", ""),
            supplier=fields.get("m", ""), homepage=fields.get("U", ""),
            description=fields.get("T", ""), source=origin if origin != name else "",
            extra={"installed_size": fields.get("I", ""), "commit": fields.get("c", "")}))
    return out


_CLASSIFIER_LICENSES = {
    "MIT License": "MIT", "Apache Software License": "Apache-2.0", "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "The Unlicense (Unlicense)": "Unlicense",
    "Python Software Foundation License": "PSF-2.0",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
}


def parse_python_metadata(text: str, location: str, layer: int) -> Package | None:
    msg = HeaderParser().parsestr(text)
    name, version = msg.get("Name", "").strip(), msg.get("Version", "").strip()
    if not name:
        return None
    license_ = (msg.get("License-Expression") or "").strip()
    if not license_:
        raw = (msg.get("License") or "").strip()
        if raw and "\n" not in raw and len(raw) <= 80 and raw.upper() != "UNKNOWN":
            license_ = raw
    if not license_:
        found = [_CLASSIFIER_LICENSES[c.rpartition(" :: ")[2]] for c in msg.get_all("Classifier") or []
                 if c.startswith("License ::") and c.rpartition(" :: ")[2] in _CLASSIFIER_LICENSES]
        license_ = " AND ".join(dict.fromkeys(found))
    author = (msg.get("Author") or msg.get("Author-email") or "").strip()
    homepage = (msg.get("Home-page") or "").strip()
    if not homepage:
        for url in msg.get_all("Project-URL") or []:
            label, _, link = url.partition(",")
            if label.strip().lower() in ("homepage", "home", "source"):
                homepage = link.strip()
                break
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    return Package(name=name, version=version, type="python", location=location, layer=layer,
                   purl=purl("pypi", "", normalized, version, {}), license=license_, supplier=author,
                   homepage=homepage, description=(msg.get("Summary") or "").strip())


def diff_packages(a: list[Package], b: list[Package]) -> dict[str, list[dict]]:
    """Packages only in a, only in b, and in both with other versions."""
    va: dict[tuple[str, str], set[str]] = {}
    vb: dict[tuple[str, str], set[str]] = {}
    for p in a:
        va.setdefault(p.key, set()).add(p.version)
    for p in b:
        vb.setdefault(p.key, set()).add(p.version)

    def row(key, versions):
        return {"type": key[0], "name": key[1], "version": ", ".join(sorted(versions))}

    return {
        "added": [row(k, vb[k]) for k in sorted(vb.keys() - va.keys())],
        "removed": [row(k, va[k]) for k in sorted(va.keys() - vb.keys())],
        "changed": [{"type": k[0], "name": k[1], "from": ", ".join(sorted(va[k])),
                     "to": ", ".join(sorted(vb[k]))}
                    for k in sorted(va.keys() & vb.keys()) if va[k] != vb[k]],
    }
