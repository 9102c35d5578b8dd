"""The node's health conditions: pure rules over capacity, kernel lines and the desired datasets."""

from __future__ import annotations

from uuid import UUID

from agent.health import (
    fits,
    health_conditions,
    keep_since,
    pool_low,
    steady,
    volumes_to_create,
)
from control.model import Capacity, Condition, ConditionKind, Dataset

MiB = 2**20
GiB = 2**30
NODE = UUID(int=1)
ONE, TWO = UUID(int=11), UUID(int=12)
POOL = Capacity("loopback", total=100 * MiB, free=80 * MiB, maximum_volume_size=80 * MiB)


def test_fits_within_the_largest_volume():
    """A size fits up to the reported largest volume; an unknown capacity fits anything."""
    assert fits(POOL, 80 * MiB)
    assert not fits(POOL, 80 * MiB + 1)
    assert fits(None, 2**62)
    assert fits(Capacity("x"), 2**62)


def test_steady_rounds_free_space_down():
    """Free space is rounded down to a coarse step, so small writes keep the report equal."""
    a = steady(
        Capacity("loopback", total=128 * GiB, free=50 * GiB + 5, maximum_volume_size=50 * GiB)
    )
    b = steady(
        Capacity(
            "loopback",
            total=128 * GiB,
            free=50 * GiB + 7 * MiB,
            maximum_volume_size=50 * GiB + 7 * MiB,
        )
    )
    assert a == b
    assert a is not None and a.free == 50 * GiB and a.maximum_volume_size == 50 * GiB


def test_steady_keeps_a_budget_apart_from_free_space():
    """A thin pool's budget (below or above free space) is not rounded to free space."""
    thin = Capacity("loopback", total=100 * MiB, free=90 * MiB, maximum_volume_size=20 * MiB)
    assert steady(thin) == thin
    full = Capacity("loopback", total=100 * MiB, free=0, maximum_volume_size=72 * MiB)
    assert steady(full) == full


def test_too_large_is_permanent_and_no_space_is_not():
    """Larger than the storage: too_large, permanent; larger than what is free: no_space."""
    conditions = health_conditions(POOL, {}, {}, [(ONE, 200 * MiB), (TWO, 90 * MiB)], 7.0)
    assert [(c.dataset_id, c.reason, c.permanent, c.step) for c in conditions] == [
        (ONE, "too_large", True, "create"),
        (TWO, "no_space", False, "create"),
    ]
    assert "200 MiB" in conditions[0].message and "80 MiB" in conditions[0].message
    assert all(c.kind is ConditionKind.ERROR and c.since == 7.0 for c in conditions)


def test_volume_that_fits_has_no_condition():
    """A volume that fits gets no condition."""
    assert health_conditions(POOL, {}, {}, [(ONE, 64 * MiB)], 0.0) == ()


def test_pool_low_under_ten_percent():
    """The node reports pool_low when less than 10% of its storage is free."""
    low = Capacity("loopback", total=100 * MiB, free=9 * MiB, maximum_volume_size=9 * MiB)
    condition = pool_low(low, 3.0)
    assert condition is not None and condition.dataset_id is None
    assert condition.reason == "pool_low" and "9 MiB of 100 MiB" in condition.message
    assert pool_low(POOL, 3.0) is None
    assert pool_low(Capacity("fake"), 3.0) is None


def test_io_error_quotes_the_kernel_line():
    """A dataset whose device the kernel complained about gets io_error quoting the line."""
    line = "EXT4-fs (loop4): failed to convert unwritten extents -- potential data loss!"
    conditions = health_conditions(
        POOL, {"/dev/loop4": line}, {ONE: "/dev/loop4", TWO: "/dev/loop5"}, [], 1.0
    )
    assert [(c.dataset_id, c.reason) for c in conditions] == [(ONE, "io_error")]
    assert line in conditions[0].message and "/dev/loop4" in conditions[0].message


def test_keep_since_of_the_same_condition():
    """A condition already reported keeps its first since; a new one keeps its own."""
    old = Condition(ONE, ConditionKind.ERROR, "no_space", "m", 5.0)
    new = [
        Condition(ONE, ConditionKind.ERROR, "no_space", "m", 9.0),
        Condition(TWO, ConditionKind.ERROR, "no_space", "m", 9.0),
    ]
    assert [c.since for c in keep_since(new, [old])] == [5.0, 9.0]


def test_volumes_to_create_are_live_datasets_here_without_volume():
    """Only live datasets of this node without a volume are to be created, at their size."""
    desired = {
        ONE: Dataset(ONE, NODE, None),
        TWO: Dataset(TWO, NODE, 64 * MiB),
        UUID(int=13): Dataset(UUID(int=13), UUID(int=2), 64 * MiB),
        UUID(int=14): Dataset(UUID(int=14), NODE, 64 * MiB, deleted=True),
    }
    assert volumes_to_create(desired, [TWO], NODE, GiB) == [(ONE, GiB)]
