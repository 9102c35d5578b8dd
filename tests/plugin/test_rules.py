"""The plugin's pure decisions: options, Mount, Remove, and what Get/List report."""

from __future__ import annotations

from uuid import UUID

import pytest

from control.client.interface import StateDataset
from control.errors import Conflict, InvalidRequest
from control.model import Dataset, Lease
from plugin import rules

HERE = UUID(int=1)
THERE = UUID(int=2)
NAMES = {HERE: "node1", THERE: "node2"}
GiB = 1024**3


def dataset(name: str = "vol", primary: UUID = HERE, n: int = 10, **kw: object) -> Dataset:
    """A dataset named ``name``."""
    return Dataset(dataset_id=UUID(int=n), primary=primary, metadata={"name": name}, **kw)


class TestFind:
    """Names map to live datasets through their metadata."""

    def test_deleted_and_unnamed_datasets_are_not_volumes(self) -> None:
        """Deleted datasets, unnamed ones and invalid names are not listed."""
        live = dataset("vol", n=1)
        others = [
            dataset("vol", n=2, deleted=True),
            Dataset(dataset_id=UUID(int=3), primary=HERE),
            dataset("../x", n=4),
        ]
        assert rules.named_datasets([*others, live]) == {"vol": live}

    def test_duplicate_names_are_refused(self) -> None:
        """A name two live datasets share (made before names were unique) resolves to neither."""
        a, b = dataset("vol", n=5), dataset("vol", n=3)
        with pytest.raises(Conflict, match=f"{b.dataset_id}, {a.dataset_id}"):
            rules.find_volume([a, b], "vol")
        assert rules.named_datasets([a, b, dataset("one", n=7)]) == {"one": dataset("one", n=7)}


class TestCreateOptions:
    """Create's Opts: size, the default, and unknown options."""

    def test_size_uses_binary_units(self) -> None:
        """The size option is parsed by control.units (1G is 1 GiB)."""
        assert rules.parse_create_options({"size": "1G"}, None) == rules.CreateOptions(GiB, True)

    def test_default_size_when_absent(self) -> None:
        """Without a size the configured default applies."""
        assert rules.parse_create_options(None, 2 * GiB) == rules.CreateOptions(2 * GiB, False)
        assert rules.parse_create_options({}, None) == rules.CreateOptions(None, False)

    def test_unknown_options_are_listed_with_the_known_ones(self) -> None:
        """An unknown option is refused with a message naming it and every known option."""
        with pytest.raises(InvalidRequest) as caught:
            rules.parse_create_options({"sise": "1G", "zz": "1"}, None)
        message = caught.value.description
        assert "'sise', 'zz'" in message and "size:" in message

    @pytest.mark.parametrize("size", ["lots", "1M", "1.5", 10])
    def test_bad_sizes_are_refused(self, size: object) -> None:
        """Unparseable, too small, unaligned or non-string sizes are refused."""
        with pytest.raises(InvalidRequest):
            rules.parse_create_options({"size": size}, None)

    def test_existing_volume_with_another_size_conflicts(self) -> None:
        """Creating an existing name is fine unless an explicit size differs."""
        existing = dataset(maximum_size=GiB)
        rules.check_existing("v", existing, rules.CreateOptions(None))
        rules.check_existing("v", existing, rules.CreateOptions(GiB, True))
        with pytest.raises(Conflict, match="already exists with size 1G, not 2G"):
            rules.check_existing("v", existing, rules.CreateOptions(2 * GiB, True))


class TestMount:
    """What a Mount does given the dataset and its lease."""

    def test_own_unleased_volume_takes_the_lease_without_moving(self) -> None:
        """A volume already on this node is leased, not moved."""
        assert rules.decide_mount("v", dataset(), None, HERE, NAMES) == rules.Claim(True, False)

    def test_unleased_volume_elsewhere_is_leased_then_moved(self) -> None:
        """A free volume on another node is leased for this node and moved here."""
        decision = rules.decide_mount("v", dataset(primary=THERE), None, HERE, NAMES)
        assert decision == rules.Claim(acquire=True, move=True)

    def test_own_lease_is_reused(self) -> None:
        """A lease this node already holds is not taken again."""
        lease = Lease(UUID(int=10), HERE)
        assert rules.decide_mount("v", dataset(), lease, HERE, NAMES) == rules.Claim(False, False)

    def test_lease_held_elsewhere_refuses_naming_the_node(self) -> None:
        """Another node's lease refuses the Mount at once, naming that node."""
        lease = Lease(UUID(int=10), THERE)
        decision = rules.decide_mount("v", dataset(primary=THERE), lease, HERE, NAMES)
        assert isinstance(decision, rules.Refused)
        assert f"node2 ({THERE})" in decision.message


class TestProgress:
    """What a waiting Mount is waiting for, from the reported state."""

    @pytest.mark.parametrize(
        ("state", "expected"),
        [
            (None, "not yet reported by any agent"),
            (StateDataset(UUID(int=10)), "not yet attached to this node"),
            (StateDataset(UUID(int=10), THERE, "/m/x"), f"still attached to node node2 ({THERE})"),
            (StateDataset(UUID(int=10), HERE), "attached to this node but not yet mounted"),
        ],
    )
    def test_waiting_reasons(self, state: StateDataset | None, expected: str) -> None:
        """Each unfinished state names what is missing."""
        progress = rules.mount_progress(state, HERE, NAMES)
        assert isinstance(progress, rules.Waiting)
        assert expected in progress.reason

    def test_mounted_here(self) -> None:
        """A volume mounted on this node is done, with its path."""
        state = StateDataset(UUID(int=10), HERE, "/m/x")
        assert rules.mount_progress(state, HERE, NAMES) == rules.Mounted("/m/x")

    def test_timeout_message_says_what_it_waits_for(self) -> None:
        """The timeout message names the volume, the time and the reason."""
        message = rules.mount_timeout_message("v", UUID(int=10), 5, rules.Waiting("stuck"))
        assert "'v'" in message and "5 s" in message and message.endswith("it is stuck.")


class TestRemove:
    """Remove is refused while anything uses the volume."""

    def test_local_users_refuse(self) -> None:
        """Containers on this node using the volume refuse its removal."""
        decision = rules.decide_remove("v", Lease(UUID(int=10), HERE), 2, HERE, NAMES)
        assert isinstance(decision, rules.Refused) and "2 container mount(s)" in decision.message

    def test_lease_elsewhere_refuses_naming_the_node(self) -> None:
        """Another node's lease refuses removal, naming the node."""
        decision = rules.decide_remove("v", Lease(UUID(int=10), THERE), 0, HERE, NAMES)
        assert isinstance(decision, rules.Refused) and "node2" in decision.message

    def test_unused_volume_is_deleted(self) -> None:
        """An unused volume is deleted; a stale own lease is released first."""
        assert rules.decide_remove("v", None, 0, HERE, NAMES) == rules.Delete(release=False)
        stale = Lease(UUID(int=10), HERE)
        assert rules.decide_remove("v", stale, 0, HERE, NAMES) == rules.Delete(release=True)


class TestReports:
    """Get and List report where volumes really are."""

    def test_mountpoint_only_where_mounted_here(self) -> None:
        """The mount path is reported only on the node that has it mounted."""
        state = StateDataset(UUID(int=10), HERE, "/m/x")
        assert rules.local_mountpoint(state, HERE) == "/m/x"
        assert rules.local_mountpoint(state, THERE) == ""
        assert rules.local_mountpoint(None, HERE) == ""

    def test_get_reports_status(self) -> None:
        """Get's Status shows the dataset, its size, where it is and who leases it."""
        d = dataset(maximum_size=GiB)
        state = StateDataset(d.dataset_id, HERE, "/m/x")
        volume = rules.volume_json("v", d, state, Lease(d.dataset_id, HERE), HERE)
        assert volume == {
            "Name": "v",
            "Mountpoint": "/m/x",
            "Status": {
                "dataset_id": str(d.dataset_id),
                "primary": str(HERE),
                "size": "1G",
                "attached_to": str(HERE),
                "mounted_at": "/m/x",
                "leased_by": str(HERE),
            },
        }

    def test_list_is_sorted_by_name(self) -> None:
        """List gives every named live volume, sorted, with local mount paths."""
        a, b = dataset("bb", n=1), dataset("aa", n=2, primary=THERE)
        states = [StateDataset(a.dataset_id, HERE, "/m/a")]
        assert rules.list_json([a, b], states, HERE) == [
            {"Name": "aa", "Mountpoint": ""},
            {"Name": "bb", "Mountpoint": "/m/a"},
        ]
