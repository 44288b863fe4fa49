"""RUN heredocs, as BuildKit runs them."""

from __future__ import annotations

from support import needs_root
from test_build import build, run_output, write

pytestmark = needs_root()


def test_run_heredoc_forms(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        ARG NAME=world
        RUN <<EOF
        echo "hello $NAME" > /greeting
        echo second line >> /greeting
        EOF
        RUN <<EOT sh -x
        echo from-sh-x > /shx
        EOT
        RUN <<'EOF'
        #!/bin/cat
        this script is printed by its own interpreter
        EOF
        RUN cat <<EOF > /viacat && cat <<EOF2 >> /viacat
        one $NAME
        EOF
        two
        EOF2
    """})
    image, events = build(store, ctx)
    out = run_output(store, image, ["cat", "/greeting", "/shx", "/viacat"])
    assert out == "hello world\nsecond line\nfrom-sh-x\none world\ntwo\n"
    printed = [e.text for e in events.kinds("output")]
    assert "this script is printed by its own interpreter" in printed   # the #! line was honoured
    names = [n for d in image.layer_digests for n in __import__("support").layer_names(store, d)]
    assert not any(n.startswith("dev/") for n in names)


def test_run_heredoc_content_is_in_the_cache_key(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nRUN <<EOF\necho one > /f\nEOF\n"})
    build(store, ctx)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nRUN <<EOF\necho two > /f\nEOF\n"})
    image, events = build(store, ctx)
    assert not events.kinds("cached")
    assert run_output(store, image, ["cat", "/f"]) == "two\n"
