"""Reading a ``/metrics`` answer with prometheus-client's own parser, for tests."""

from __future__ import annotations

from attrs import frozen
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@frozen
class Scrape:
    """One parsed exposition: its families' types, and every sample."""

    types: dict[str, str]
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample ``name`` with exactly ``labels`` (0.0 if absent)."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, f"{name}{labels} is ambiguous"
        return found[0] if found else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include ``labels``."""
        return sum(
            s.value for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value label ``label`` takes in samples ``name``."""
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def parse(text: str) -> Scrape:
    """Parse a text exposition (it must parse: the parser raises on anything malformed)."""
    types: dict[str, str] = {}
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        samples.extend(family.samples)
    return Scrape(types, samples)
