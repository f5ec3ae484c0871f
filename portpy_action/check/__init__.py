"""The portability proof: what a bundle needs from its target, and a moved-bundle run."""

from portpy_action.check.enforce import enforce_policy
from portpy_action.check.report import (
    ExternalLib,
    FileNeeds,
    PortabilityReport,
    SymbolNeed,
    format_report_table,
)
from portpy_action.check.scan import scan_bundle

__all__ = [
    "ExternalLib",
    "FileNeeds",
    "PortabilityReport",
    "SymbolNeed",
    "enforce_policy",
    "format_report_table",
    "scan_bundle",
]
