"""The recorder's ServiceMonitor keeps the job info metric's own namespace and pod."""

from __future__ import annotations

from tests.chart.conftest import one, render


def test_the_recorder_is_scraped_with_its_series_labels_honoured() -> None:
    manifests = render(None, "recorder.metrics.serviceMonitor.enabled=true")
    monitor = one(manifests, "ServiceMonitor", "rs-recorder")
    assert [e["honorLabels"] for e in monitor["spec"]["endpoints"]] == [True]
