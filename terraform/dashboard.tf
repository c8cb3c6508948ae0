# The pipeline's Cloud Monitoring dashboard: the alert policies' status, then a chart per log-based
# metric of metrics.tf. Its layout is dashboards/pipeline.json, a template whose placeholders are the
# names the API needs (metric types and alert policies carry the prefix and the project).
# test/terraform/monitoring.test.ts checks it charts every metric and names only defined ones.

locals {
  # The placeholders of dashboards/pipeline.json: ${metric.<key>} and ${alert.<key>}.
  dashboard_metrics = {
    inputs_received      = "logging.googleapis.com/user/${google_logging_metric.inputs_received.name}"
    inputs_rejected      = "logging.googleapis.com/user/${google_logging_metric.inputs_rejected.name}"
    jobs_finished        = "logging.googleapis.com/user/${google_logging_metric.jobs_finished.name}"
    events_published     = "logging.googleapis.com/user/${google_logging_metric.events_published.name}"
    events_unpublishable = "logging.googleapis.com/user/${google_logging_metric.events_unpublishable.name}"
    digests              = "logging.googleapis.com/user/${google_logging_metric.digests.name}"
    poll_runs            = "logging.googleapis.com/user/${google_logging_metric.poll_runs.name}"
    poll_runs_truncated  = "logging.googleapis.com/user/${google_logging_metric.poll_runs_truncated.name}"
    poll_errors          = "logging.googleapis.com/user/${google_logging_metric.poll_errors.name}"
    queue_waiting        = "logging.googleapis.com/user/${google_logging_metric.queue_waiting.name}"
    queue_oldest_wait    = "logging.googleapis.com/user/${google_logging_metric.queue_oldest_wait.name}"
  }
  dashboard_alerts = {
    poll_stalled = google_monitoring_alert_policy.poll_stalled.name
    rejections   = google_monitoring_alert_policy.rejections.name
    jobs_failed  = google_monitoring_alert_policy.jobs_failed.name
    queue_age    = google_monitoring_alert_policy.queue_age.name
  }
}

resource "google_monitoring_dashboard" "pipeline" {
  project = var.project_id
  dashboard_json = templatefile("${path.module}/dashboards/pipeline.json", {
    display_name          = "${var.prefix}: pipeline"
    metric                = local.dashboard_metrics
    alert                 = local.dashboard_alerts
    queue_age_alert_hours = var.monitoring.queue_age_alert_hours
  })

  depends_on = [google_project_service.apis]
}
