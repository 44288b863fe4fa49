"""One case per rule: a Dockerfile that triggers it at line:column, and a
close variant that does not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dockyard import lint


def df(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def hits(text: str, rule: str, **kw) -> list[lint.Finding]:
    return [f for f in lint.check(df(text), **kw) if f.rule == rule]


# rule, bad Dockerfile, (line, column) of the first finding, good Dockerfile
CASES = [
    ("StageNameCasing", """
        FROM busybox:1.37 AS BuilderBase
        """, (1, 22), """
        FROM busybox:1.37 AS builder-base
        """),
    ("FromAsCasing", """
        FROM busybox:1.37 as build
        """, (1, 19), """
        from busybox:1.37 as build
        """),
    ("NoEmptyContinuation", """
        FROM busybox:1.37
        RUN echo a && \\

            echo b
        """, (3, 1), """
        FROM busybox:1.37
        RUN echo a && \\
            echo b
        """),
    ("ConsistentInstructionCasing", """
        FROM busybox:1.37
        RUN true
        run true
        """, (3, 1), """
        FROM busybox:1.37
        RUN true
        RUN true
        """),
    ("DuplicateStageName", """
        FROM busybox:1.37 AS base
        FROM busybox:1.37 AS base
        """, (2, 22), """
        FROM busybox:1.37 AS base
        FROM busybox:1.37 AS final
        """),
    ("ReservedStageName", """
        FROM busybox:1.37 AS scratch
        """, (1, 22), """
        FROM busybox:1.37 AS scratchpad
        """),
    ("JSONArgsRecommended", """
        FROM busybox:1.37
          CMD echo hello
        """, (2, 3), """
        FROM busybox:1.37
        CMD ["echo", "hello"]
        """),
    ("MaintainerDeprecated", """
        FROM busybox:1.37
        MAINTAINER me@example.com
        """, (2, 1), """
        FROM busybox:1.37
        LABEL org.opencontainers.image.authors="me@example.com"
        """),
    ("UndefinedArgInFrom", """
        ARG TAG=1.37
        FROM busybox:${TAGG}
        """, (2, 14), """
        ARG TAG=1.37
        FROM busybox:${TAG}
        """),
    ("InvalidDefaultArgInFrom", """
        ARG TAG
        FROM busybox:${TAG}
        """, (2, 6), """
        ARG TAG=1.37
        FROM busybox:${TAG}
        """),
    ("FromPlatformFlagConstDisallowed", """
        FROM --platform=linux/amd64 busybox:1.37 AS base
        """, (1, 6), """
        FROM --platform=$BUILDPLATFORM busybox:1.37 AS base
        """),
    ("RedundantTargetPlatform", """
        FROM --platform=$TARGETPLATFORM busybox:1.37
        """, (1, 6), """
        FROM busybox:1.37
        """),
    ("WorkdirRelativePath", """
        FROM busybox:1.37
        WORKDIR app/src
        """, (2, 9), """
        FROM busybox:1.37
        WORKDIR /app
        WORKDIR src
        """),
    ("UndefinedVar", """
        FROM busybox:1.37
        ENV PATH=/app/bin:$PAHT
        """, (2, 19), """
        FROM busybox:1.37
        ARG foo
        ENV PATH=/app/bin:$PATH DIR=$foo
        """),
    ("MultipleInstructionsDisallowed", """
        FROM busybox:1.37
        CMD ["echo", "one"]
        CMD ["echo", "two"]
        """, (2, 1), """
        FROM busybox:1.37
        HEALTHCHECK CMD ["true"]
        CMD ["echo", "two"]
        """),
    ("LegacyKeyValueFormat", """
        FROM busybox:1.37
        ENV GREETING hello
        """, (2, 1), """
        FROM busybox:1.37
        ENV GREETING=hello
        """),
    ("ExposeProtoCasing", """
        FROM busybox:1.37
        EXPOSE 8080 80/TcP
        """, (2, 13), """
        FROM busybox:1.37
        EXPOSE 8080 80/tcp
        """),
    ("ExposeInvalidFormat", """
        FROM busybox:1.37
        EXPOSE 127.0.0.1:80:80
        """, (2, 8), """
        FROM busybox:1.37
        EXPOSE 80
        """),
    ("SecretsUsedInArgOrEnv", """
        FROM busybox:1.37
        ARG AWS_SECRET_ACCESS_KEY
        """, (2, 5), """
        FROM busybox:1.37
        ARG AWS_REGION
        ENV GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D PASSWORD_FILE=/run/secrets/db PUBLIC_TOKEN=x
        """),
    ("HardcodedSecret", """
        FROM busybox:1.37
        RUN wget -q https://deploy:hunter2@git.example.com/x.tar
        """, (2, 28), """
        FROM busybox:1.37
        RUN wget -q https://$USER:$PASS@git.example.com/x.tar
        """),
    ("RootUser", """
        FROM busybox:1.37 AS build
        USER 1000
        FROM busybox:1.37
        USER root
        """, (4, 1), """
        FROM busybox:1.37 AS build
        FROM build
        USER 1000
        """),
    ("UntaggedBaseImage", """
        FROM busybox:1.37 AS build
        FROM busybox
        """, (2, 6), """
        FROM busybox:1.37 AS build
        FROM build
        """),
    ("LatestBaseImageTag", """
        ARG BASE=busybox:latest
        FROM $BASE
        """, (2, 6), """
        ARG BASE=busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
        FROM $BASE
        """),
    ("AddUrlWithoutChecksum", """
        FROM busybox:1.37
        ADD https://example.com/tool.tar.gz /opt/
        """, (2, 5), """
        FROM busybox:1.37
        ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/tool.tar.gz /opt/
        """),
    ("CurlPipeShell", """
        FROM busybox:1.37
        RUN apk add --no-cache curl && \\
            curl -fsSL https://example.com/install.sh | sudo -E bash -s
        """, (3, 5), """
        FROM busybox:1.37
        RUN curl -fsSLo /tmp/install.sh https://example.com/install.sh | tee /tmp/log
        """),
    ("PackageCacheInLayer", """
        FROM busybox:1.37
        RUN pip install --upgrade pip && \\
            apt-get update && apt-get install -y curl
        """, (2, 5), """
        FROM busybox:1.37
        RUN --mount=type=cache,target=/root/.cache/pip pip install flask
        RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*
        RUN apk add --no-cache curl
        """),
]


@pytest.mark.parametrize("rule,bad,where,good", CASES, ids=[c[0] for c in CASES])
def test_rule_triggers_at_its_place_and_not_on_the_fixed_file(rule, bad, where, good):
    assert rule in lint.RULES
    found = hits(bad, rule)
    assert found, f"{rule} did not trigger"
    assert (found[0].line, found[0].column) == where, lint.format_text(found)
    assert found[0].filename == "Dockerfile"
    assert found[0].url == lint.RULES[rule].url
    assert hits(good, rule) == [], lint.format_text(hits(good, rule))


def test_every_registered_rule_has_a_case():
    covered = {c[0] for c in CASES} | {"CopyIgnoredFile", "InvalidDefinitionDescription"}
    assert covered == set(lint.RULES)


def test_buildkit_rules_link_to_their_docs():
    r = lint.RULES["JSONArgsRecommended"]
    assert r.url == "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
    assert lint.RULES["FromPlatformFlagConstDisallowed"].url.endswith("/from-platform-flag-const-disallowed/")


def test_copy_ignored_file(tmp_path: Path):
    (tmp_path / ".dockerignore").write_text("*/tmp/*\nsecrets\n")
    text = """
        FROM busybox:1.37
        ARG DIR=secrets
        COPY ./app/tmp/hello.txt /hello.txt
        COPY --from=busybox:1.37 /secrets /x
        COPY ./app/src/ ${DIR}/key.pem /dst/
        """
    found = hits(text, "CopyIgnoredFile", context_dir=tmp_path)
    assert [(f.line, f.column) for f in found] == [(3, 6), (5, 17)]
    assert all(f.severity == "error" for f in found)
    assert hits(text, "CopyIgnoredFile") == []  # no context, no check
    assert hits("FROM busybox:1.37\nCOPY ./app/src/ /dst/\n", "CopyIgnoredFile", context_dir=tmp_path) == []


def test_copy_ignored_file_prefers_the_dockerfile_specific_ignore_file(tmp_path: Path):
    (tmp_path / ".dockerignore").write_text("a.txt\n")
    (tmp_path / "app.Dockerfile").write_text("FROM busybox:1.37\nCOPY a.txt b.txt /\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("b.txt\n")
    found = hits((tmp_path / "app.Dockerfile").read_text(), "CopyIgnoredFile",
                 filename="app.Dockerfile", context_dir=tmp_path)
    assert [(f.line, f.column) for f in found] == [(2, 12)]


def test_invalid_definition_description_is_experimental():
    text = """
        # syntax=docker/dockerfile:1
        # check=experimental=InvalidDefinitionDescription

        # a note that is not a description
        FROM busybox:1.37 AS base
        # VERSION is the release to build
        ARG VERSION=1
        # some unrelated remark
        ARG OTHER=1
        """
    found = hits(text, "InvalidDefinitionDescription")
    assert [(f.line, f.column) for f in found] == [(5, 1), (9, 1)]
    assert hits(text.replace("# check=experimental=InvalidDefinitionDescription", ""),
                "InvalidDefinitionDescription") == []


def test_undefined_var_knows_stage_inheritance_and_guards():
    text = """
        ARG GLOBAL=1
        FROM busybox:1.37 AS base
        ENV FROM_BASE=1
        ARG BASE_ONLY=1
        FROM base
        ENV A=$FROM_BASE B=${MISSING:-default} C=$BASE_ONLY D=$GLOBAL
        """
    found = hits(text, "UndefinedVar")
    assert [f.message.split()[1] for f in found] == ["$BASE_ONLY", "$GLOBAL"]
    assert (found[0].line, found[0].column) == (6, 42)


def test_undefined_var_uses_base_image_env_when_known():
    text = "FROM python:3.12-slim\nENV V=$PYTHON_VERSION\n"
    assert hits(text, "UndefinedVar")
    config = {"Env": ["PATH=/usr/bin", "PYTHON_VERSION=3.12.1"], "User": ""}
    assert hits(text, "UndefinedVar", image_config=lambda name: config) == []


def test_undefined_var_ignores_single_quoted_text_and_run():
    text = "FROM busybox:1.37\nLABEL note='costs $5'\nRUN echo $HOME\n"
    assert hits(text, "UndefinedVar") == []


def test_root_user_trusts_a_non_root_base_image():
    text = "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY app /app\n"
    assert hits(text, "RootUser")
    assert hits(text, "RootUser", image_config=lambda name: {"User": "65532"}) == []


def test_json_args_recommended_is_quiet_after_an_explicit_shell():
    text = 'FROM busybox:1.37\nSHELL ["/bin/sh", "-c"]\nCMD echo hi\n'
    assert hits(text, "JSONArgsRecommended") == []


def test_platform_named_stage_may_pin_its_platform():
    text = "FROM --platform=linux/arm64 busybox:1.37 AS build_arm64\n"
    assert hits(text, "FromPlatformFlagConstDisallowed") == []


def test_package_cache_only_counts_in_shipped_stages():
    text = """
        FROM busybox:1.37 AS build
        RUN pip install flask
        FROM busybox:1.37
        COPY --from=build /x /x
        """
    assert hits(text, "PackageCacheInLayer") == []
    assert hits(text.replace("FROM busybox:1.37\n", "FROM build\n", 1), "PackageCacheInLayer")


def test_pip_cache_is_fine_with_no_cache_dir_or_env():
    assert hits("FROM busybox:1.37\nRUN pip install --no-cache-dir flask\n", "PackageCacheInLayer") == []
    assert hits("FROM busybox:1.37\nENV PIP_NO_CACHE_DIR=1\nRUN pip3 install flask\n",
                "PackageCacheInLayer") == []
    assert hits("FROM busybox:1.37\nRUN python -m pip install flask\n", "PackageCacheInLayer")


def test_secret_names():
    from dockyard.lint.rules_security import secret_like_name

    for name in ("GITHUB_TOKEN", "DB_PASSWORD", "apiKey", "SSH_PRIVATE_KEY", "NPM_AUTH", "db_pass",
                 "ClientSecret"):
        assert secret_like_name(name), name
    for name in ("GPG_KEY", "PUBLIC_KEY", "TOKEN_FILE", "PWD", "PASSWORD_PATH", "KEYBOARD", "AUTHOR",
                 "TOKENIZER_MODEL"):
        assert not secret_like_name(name), name


def test_findings_are_sorted_and_multiline_instructions_are_located():
    text = """
        FROM busybox:1.37
        ENV A=1 \\
            B=$NOPE
        """
    found = lint.check(df(text))
    assert [(f.rule, f.line, f.column) for f in found if f.rule == "UndefinedVar"] == [("UndefinedVar", 3, 7)]
    assert found == sorted(found, key=lambda f: (f.line, f.column, f.rule))


def test_a_dockerfile_that_does_not_parse_raises():
    from dockyard.errors import DockerfileError

    with pytest.raises(DockerfileError, match="Dockerfile:2"):
        lint.check("FROM busybox:1.37\nFORM x\n")
