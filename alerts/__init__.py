"""Alert workers: threshold, event and anomaly detection over the stream, alarm lifecycle, escalation."""
