"""`guardproxy eval`: measure a policy's detectors on labeled data (metrics, predictions, report, plot)."""
