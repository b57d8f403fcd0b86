"""Sessions are opened with the options inference relies on."""

from __future__ import annotations

import pytest

from models.runtime import open_session
from tests.models.support import PreparedCache


@pytest.mark.parametrize("threads", [1, 2])
def test_sessions_run_float_kernels_on_a_bounded_pool(
    prepared: PreparedCache, threads: int
) -> None:
    session = open_session(prepared.models["yunet-2023mar-int8bq"].path, threads=threads)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.disable_quant_qdq") == "1"
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_threads_must_be_positive(prepared: PreparedCache) -> None:
    with pytest.raises(ValueError, match="threads must be at least 1"):
        open_session(prepared.models["yunet-2023mar-int8bq"].path, threads=0)
