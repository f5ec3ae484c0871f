"""The portability proof: what a bundle needs from its target, and a moved-bundle run."""

from portpy_action.check.enforce import enforce_policy
from portpy_action.check.report import (
    ExternalLib,
    FileNeeds,
    PortabilityReport,
    SearchPathEntry,
    SymbolNeed,
    format_report_table,
)
from portpy_action.check.scan import scan_bundle
from portpy_action.check.smoke import SmokeResult, smoke_test
from portpy_action.check.verify import VerifyResult, verify_archive

__all__ = [
    "ExternalLib",
    "FileNeeds",
    "PortabilityReport",
    "SearchPathEntry",
    "SmokeResult",
    "SymbolNeed",
    "VerifyResult",
    "enforce_policy",
    "format_report_table",
    "scan_bundle",
    "smoke_test",
    "verify_archive",
]
