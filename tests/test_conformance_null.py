"""The conformance suite against the offline tracker, found through its entry point."""

from trackmux_spec.conformance import TrackerConformance


class TestNullTrackerConformance(TrackerConformance):
    tracker_name = "null"
