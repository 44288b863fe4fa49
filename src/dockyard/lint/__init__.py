"""Dockerfile linting: BuildKit's build checks plus dockyard's security rules.

    from dockyard import lint
    findings = lint.check(text, filename="Dockerfile", context_dir=Path("."))
    print(lint.format_text(findings))
    sys.exit(lint.exit_code(findings, error=lint.config(text).error))

``lint.RULES`` maps each rule name to its description, severity and URL.
"""

from __future__ import annotations

from .model import RULES, CheckConfig, Finding, Rule, parse_check_directive
from .output import format_json, format_sarif, format_text
from .runner import check, config, exit_code, store_image_config

__all__ = ["RULES", "CheckConfig", "Finding", "Rule", "check", "config", "exit_code", "format_json",
           "format_sarif", "format_text", "parse_check_directive", "store_image_config"]
