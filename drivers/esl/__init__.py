"""Electronic shelf labels: the backend interface (``backend``) and its OpenEPaperLink driver.

The access point simulator lives in ``drivers.esl.simulator`` and is not imported here, so the
runtime never loads uvicorn or Pillow for it.
"""

from .backend import (
    AccessPointBusy,
    AccessPointUnreachable,
    BadResponse,
    DeliveryStatus,
    EslError,
    InvalidLabelId,
    LabelBackend,
    TagState,
    UnknownLabel,
    Upload,
    delivery_status,
    is_delivered,
)
from .openepaperlink import OeplMetrics, OpenEPaperLinkAP, normalize_mac

__all__ = [
    "AccessPointBusy",
    "AccessPointUnreachable",
    "BadResponse",
    "DeliveryStatus",
    "EslError",
    "InvalidLabelId",
    "LabelBackend",
    "OeplMetrics",
    "OpenEPaperLinkAP",
    "TagState",
    "UnknownLabel",
    "Upload",
    "delivery_status",
    "is_delivered",
    "normalize_mac",
]
