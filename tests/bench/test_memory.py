import pytest
import torch

from llmrec.bench.memory import PeakMemory, resident_mb


@pytest.mark.skipif(resident_mb() is None or torch.cuda.is_available(), reason="CPU RSS from /proc")
def test_the_peak_covers_an_allocation_made_inside_the_block():
    with PeakMemory(interval=0.01) as baseline:
        pass
    with PeakMemory(interval=0.01) as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        block.add_(1)
        import time

        time.sleep(0.1)
    assert memory.peak_mb >= baseline.peak_mb + 50
    del block
