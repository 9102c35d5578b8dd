"""Unit tests of the pure domain rules in control.rules."""

from __future__ import annotations

import posixpath
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control import rules
from control.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PreconditionFailed,
)
from control.model import Dataset, DatasetState, Lease, Node, NodeState, VolumeStatus

NOW = 1000.0
A, B, C = uuid4(), uuid4(), uuid4()


def dataset(primary=A, **kwargs) -> Dataset:
    """A dataset on ``primary``."""
    return Dataset(dataset_id=kwargs.pop("dataset_id", uuid4()), primary=primary, **kwargs)


def seen(node, generation, *ids, status=VolumeStatus.PRESENT) -> NodeState:
    """A report from ``node`` at ``generation`` holding ``ids``."""
    return NodeState(node_uuid=node, generation=generation,
                     datasets={i: DatasetState(dataset_id=i, status=status) for i in ids})


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_check_tag(generation: int, other: int) -> None:
    """Only the current generation's tag, or no tag, passes."""
    rules.check_tag(generation, None)
    rules.check_tag(generation, str(generation))
    if other != generation:
        with pytest.raises(PreconditionFailed):
            rules.check_tag(generation, str(other))


def test_create() -> None:
    """Creation normalises deletion fields and refuses used ids and unknown primaries."""
    wanted = dataset(deleted=True, deleted_generation=3, metadata={"a": "b"})
    created = rules.create_dataset(None, True, wanted)
    assert created == dataset(dataset_id=wanted.dataset_id, metadata={"a": "b"})
    with pytest.raises(Conflict):
        rules.create_dataset(created, True, wanted)
    with pytest.raises(Conflict, match="Unknown primary"):
        rules.create_dataset(None, False, wanted)


def test_create_name_in_use() -> None:
    """A name a live dataset carries is refused with that dataset's id; a deleted one frees it."""
    holder = dataset(metadata={"name": "db"})
    wanted = dataset(metadata={"name": "db"})
    with pytest.raises(Conflict, match=f"'db' is already used by dataset {holder.dataset_id}"):
        rules.create_dataset(None, True, wanted, holder)
    gone = rules.delete_dataset(holder, holder.dataset_id, None, 2, NOW)
    assert rules.create_dataset(None, True, wanted, gone) == wanted


def test_lease_refusal_names_holder_and_release_command() -> None:
    """A refusal for a lease names the holder's node and how to release the lease."""
    current = dataset()
    lease = Lease(current.dataset_id, C)
    with pytest.raises(Conflict) as caught:
        rules.move_dataset(current, current.dataset_id, B, True, lease, NOW, "node3")
    message = caught.value.description
    assert f"node node3 ({C}) holds a lease" in message
    assert f"`shoal lease release {current.dataset_id}`" in message


def test_move() -> None:
    """A move changes the primary, unless the dataset is missing, deleted or leased elsewhere."""
    current = dataset(metadata={"x": "y"})
    moved = rules.move_dataset(current, current.dataset_id, B, True, None, NOW)
    assert moved == dataset(
        primary=B, dataset_id=current.dataset_id, metadata={"x": "y"}, epoch=1
    )
    with pytest.raises(NotFound):
        rules.move_dataset(None, current.dataset_id, B, True, None, NOW)
    with pytest.raises(Conflict, match="Unknown primary"):
        rules.move_dataset(current, current.dataset_id, B, False, None, NOW)
    deleted = rules.delete_dataset(current, current.dataset_id, None, 2, NOW)
    with pytest.raises(NotAllowed):
        rules.move_dataset(deleted, current.dataset_id, B, True, None, NOW)


@pytest.mark.parametrize(
    ("holder", "expires", "target", "allowed"),
    [(C, None, B, False), (C, NOW + 1, B, False), (C, NOW, B, True), (B, None, B, True),
     (C, None, A, True)],
)
def test_move_and_leases(holder, expires, target, allowed: bool) -> None:
    """A live lease by another node blocks a move; the target's own, expired, or no-op do not."""
    current = dataset()
    lease = Lease(current.dataset_id, holder, expires)
    if allowed:
        assert rules.move_dataset(current, current.dataset_id, target, True, lease, NOW).primary \
            == target
    else:
        with pytest.raises(Conflict, match=str(holder)):
            rules.move_dataset(current, current.dataset_id, target, True, lease, NOW)


def test_delete() -> None:
    """Delete marks the generation; repeats are idempotent; leases and absence refuse."""
    current = dataset()
    deleted = rules.delete_dataset(current, current.dataset_id, None, 7, NOW)
    assert (deleted.deleted, deleted.deleted_generation) == (True, 7)
    assert rules.delete_dataset(deleted, current.dataset_id, None, 9, NOW) is deleted
    with pytest.raises(NotFound):
        rules.delete_dataset(None, current.dataset_id, None, 7, NOW)
    with pytest.raises(Conflict):
        rules.delete_dataset(current, current.dataset_id, Lease(current.dataset_id, A), 7, NOW)
    expired = Lease(current.dataset_id, A, NOW - 1)
    assert rules.delete_dataset(current, current.dataset_id, expired, 7, NOW).deleted


def test_acquire_lease() -> None:
    """Leases are created, renewed by their holder, and refused otherwise."""
    current = dataset()
    mine = Lease(current.dataset_id, A, NOW + 5)
    assert rules.acquire_lease(current, None, mine, NOW) == (mine, True)
    assert rules.acquire_lease(current, mine, mine, NOW) == (mine, False)
    theirs = Lease(current.dataset_id, B, None)
    with pytest.raises(Conflict):
        rules.acquire_lease(current, mine, theirs, NOW)
    assert rules.acquire_lease(current, mine, theirs, NOW + 5) == (theirs, True)
    with pytest.raises(NotFound):
        rules.acquire_lease(None, None, mine, NOW)
    with pytest.raises(InvalidRequest):
        rules.acquire_lease(current, None, Lease(current.dataset_id, A, NOW), NOW)
    deleted = rules.delete_dataset(current, current.dataset_id, None, 2, NOW)
    with pytest.raises(NotAllowed):
        rules.acquire_lease(deleted, None, mine, NOW)


def test_release_lease() -> None:
    """Only a live lease can be released."""
    lease = Lease(uuid4(), A, NOW + 1)
    assert rules.release_lease(lease, lease.dataset_id, NOW) is lease
    for existing in (None, lease):
        with pytest.raises(NotFound):
            rules.release_lease(existing, lease.dataset_id, NOW + 1)


def test_purgeable() -> None:
    """A deleted dataset is purgeable once unreported and its primary caught up."""
    live = dataset()
    gone = rules.delete_dataset(live, live.dataset_id, None, 5, NOW)
    i = live.dataset_id
    eras = {A: None, B: None}
    assert not rules.purgeable(live, [seen(A, 9)], eras)
    assert not rules.purgeable(gone, [], eras)
    assert not rules.purgeable(gone, [seen(A, 4)], eras)
    assert not rules.purgeable(gone, [seen(A, 5), seen(B, 9, i)], eras)
    assert not rules.purgeable(gone, [seen(A, 5, i)], eras)
    assert not rules.purgeable(gone, [seen(B, 9)], eras)
    assert rules.purgeable(gone, [seen(A, 5), seen(B, 1)], eras)
    assert not rules.purgeable(gone, [seen(A, 5), seen(B, 1)], {A: "rebooted", B: None})
    assert not rules.purgeable(gone, [seen(A, 5)], {})


@given(st.lists(st.tuples(st.sampled_from([A, B, C]), st.integers(0, 10), st.booleans())))
def test_purgeable_property(reports) -> None:
    """Purgeable exactly when nobody holds the volume and the primary saw the deletion."""
    live = dataset()
    gone = rules.delete_dataset(live, live.dataset_id, None, 5, NOW)
    states = [seen(n, g, *([live.dataset_id] if has else [])) for n, g, has in reports]
    expected = not any(has for _, _, has in reports) and any(
        n == A and g >= 5 for n, g, _ in reports
    )
    assert rules.purgeable(gone, states, {A: None, B: None, C: None}) is expected


def test_mounted_elsewhere() -> None:
    """Only another node's mounted report counts."""
    i = uuid4()
    assert rules.mounted_elsewhere(i, A, [seen(A, 1, i, status=VolumeStatus.MOUNTED)]) is None
    assert rules.mounted_elsewhere(i, A, [seen(B, 1, i, status=VolumeStatus.ATTACHED)]) is None
    assert rules.mounted_elsewhere(i, A, [seen(B, 1, i, status=VolumeStatus.MOUNTED)]) == B


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "mnt"]), min_size=1, max_size=6))
def test_strictly_below_never_escapes(parts) -> None:
    """A path accepted below ``/mnt`` is normalised and really lies inside it."""
    path = "/mnt/" + "/".join(parts)
    if rules.strictly_below("/mnt", path):
        assert posixpath.normpath(path) == path and ".." not in path.split("/")
        assert path.startswith("/mnt/") and len(path) > len("/mnt/")


def test_check_identity_only_binds_recorded_certificates() -> None:
    """No identity recorded or none presented (plain HTTP) passes; a different one is 403."""
    bound = Node(uuid=A, host="h", identity="ab")
    rules.check_identity(Node(uuid=A, host="h"), "cd", "report for")
    rules.check_identity(bound, None, "report for")
    rules.check_identity(bound, "ab", "report for")
    with pytest.raises(Forbidden, match="ab"):
        rules.check_identity(bound, "cd", "report for")


def test_a_certificate_bound_to_the_node_takes_it_over() -> None:
    """A node registered with one certificate's fingerprint may be registered again by a
    certificate bound to its uuid (a reissued one), which is then recorded; a certificate bound
    to another node may not."""
    from control.roles import node_urn

    bound = Node(uuid=A, host="h", identity="ab")
    again = rules.register_node(bound, Node(uuid=A, host="h", identity=node_urn(A)))
    assert again.identity == node_urn(A)
    with pytest.raises(Forbidden):
        rules.register_node(bound, Node(uuid=A, host="h", identity=node_urn(uuid4())))
    with pytest.raises(Forbidden):
        rules.check_identity(again, "ab", "report for")


_ROOTS = ["/", "/m", "/m/", "//m", "/m/../n", "/var/lib/shoal"]
_PATHS = ["/", "/m", "/m/", "/m/a", "/m/a/", "/m//a", "/m/./a", "/m/../a", "/mx/a", "//m/a",
          "/var/lib/shoal/x", "/var/lib/shoal", "relative/a"]


@given(st.sampled_from(_ROOTS), st.lists(st.sampled_from(_PATHS), min_size=1, max_size=4))
def test_report_paths_refused_exactly_when_not_strictly_below(root: str, paths: list[str]) -> None:
    """A report is refused for its paths exactly when one is not strictly below the mount root."""
    node = Node(uuid=uuid4(), host="10.0.0.1", era="e", mount_root=root)
    states = {}
    for path in paths:
        state = DatasetState(uuid4(), VolumeStatus.MOUNTED, None, "/dev/x", path)
        states[state.dataset_id] = state
    report = NodeState(node.uuid, "e", 0, states)
    expected_ok = all(rules.strictly_below(root, path) for path in paths)
    try:
        rules.check_report(node, None, report, 0, None)
    except Conflict:
        assert not expected_ok
    else:
        assert expected_ok
