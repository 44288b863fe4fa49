"""Docker as the oracle: the same image and flags give the same output and exit code.

Both engines import the busybox rootfs tar with the same --change list, so
the images agree; each case then runs under `docker run` and `dockyard run`.
Host names differ by design (container ids), so HOSTNAME lines are masked.
"""

from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.root]

CHANGES = [
    'ENTRYPOINT ["/bin/sh", "-c", "echo \\"ep:$0:$*\\"; env | sort", "first"]',
    'CMD ["c1", "c2"]',
    "ENV GREETING=hello EMPTY= PATH=/usr/bin:/bin",
    "USER app",
    "WORKDIR /home/app/work",
]

# (flags, command)
CASES = [
    ([], []),
    ([], ["x", "y"]),
    (["--entrypoint", "/bin/echo"], []),
    (["--entrypoint", "/bin/echo"], ["a", "b"]),
    (["--entrypoint", ""], ["echo", "plain"]),
    (["--entrypoint", ""], []),
    (["-e", "GREETING=override", "-e", "NEW=1"], []),
    (["-u", "root", "--entrypoint", "/bin/sh"], ["-c", "id; pwd; echo $HOME"]),
    (["-u", "app:staff", "--entrypoint", "id"], []),
    (["-u", "1234:5678", "--entrypoint", "/bin/sh"], ["-c", "id; echo $HOME"]),
    (["-u", "nosuch"], []),
    (["-w", "/tmp/made", "--entrypoint", "pwd"], []),
    (["-w", "relative", "--entrypoint", "pwd"], []),
    (["--entrypoint", "/bin/sh"], ["-c", "exit 3"]),
    (["--entrypoint", "/bin/sh"], ["-c", "kill -9 $$"]),
    (["--entrypoint", "no-such-command"], []),
    (["--entrypoint", "/etc/passwd"], []),
    (["-t", "--entrypoint", "/bin/sh"], ["-c", "tty; echo $TERM"]),
    (["--no-such-flag"], []),
]


def _normalize(text: str) -> str:
    return re.sub(r"HOSTNAME=\S+", "HOSTNAME=*", text.replace("\r\n", "\n"))


@pytest.fixture(scope="module")
def images(docker, run_store, busybox_tar):
    from dockyard import api

    args = [docker, "import"]
    for change in CHANGES:
        args += ["--change", change]
    subprocess.run([*args, str(busybox_tar), "dockyard-test/oracle:1"], check=True, capture_output=True)
    api.import_image(busybox_tar, "dockyard-test/oracle:1", changes=CHANGES, store=run_store)
    yield docker
    subprocess.run([docker, "rmi", "-f", "dockyard-test/oracle:1"], capture_output=True, check=False)


@pytest.mark.parametrize("flags, command", CASES, ids=[" ".join(f + c) or "defaults" for f, c in CASES])
def test_same_as_docker(images, dy, flags, command):
    ours = dy("run", "--rm", *flags, "dockyard-test/oracle:1", *command)
    theirs = subprocess.run([images, "run", "--rm", *flags, "dockyard-test/oracle:1", *command],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert _normalize(ours.stdout) == _normalize(theirs.stdout)
