# Alert policies on the log-based metrics of metrics.tf. Each notifies monitoring.notification_channels
# (none by default: incidents then only show in the console) and says in its documentation where to
# look. Thresholds are attributes of the monitoring variable.
#
# Monitoring filters name the metric type and the resource type (required in a condition); each
# log-based metric's time series are per Cloud Run revision, so every condition sums or takes the
# maximum across revisions: a new revision after a deploy neither doubles nor hides a signal.

locals {
  # Minutes between two scheduled poll runs: monitoring.poll_interval_minutes, else read from a cron
  # of the form */k * * * * (or * * * * *); 0 when neither says, which a precondition refuses.
  poll_cron_minutes = try(
    tonumber(regex("^\\*/([0-9]+) \\* \\* \\* \\*$", var.poll_schedule.cron)[0]),
    var.poll_schedule.cron == "* * * * *" ? 1 : null,
  )
  poll_interval_minutes = coalesce(var.monitoring.poll_interval_minutes, local.poll_cron_minutes, 0)

  # A window that holds at least one scheduled poll run, at least 10 minutes.
  poll_window_seconds = max(600, 2 * local.poll_interval_minutes * 60)

  alert_documentation_footer = "Logs: Cloud Logging, query `${local.function_logs_filter}`, plus `jsonPayload.event=\"<event>\"`. Metrics and alerts: terraform/README.md of the batch-courier repository, section Monitoring."
}

resource "google_monitoring_alert_policy" "poll_stalled" {
  project               = var.project_id
  display_name          = "${var.prefix}: poller not completing runs"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.monitoring.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "No poll run completed in ${var.monitoring.poll_failed_runs} scheduled runs"
    condition_absent {
      filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.poll_runs.name}\""
      # The absence of data is what fails: at least 120 s (the service's minimum).
      duration = "${max(120, var.monitoring.poll_failed_runs * local.poll_interval_minutes * 60)}s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    subject   = "${var.prefix}: the poller has not completed a run in ${var.monitoring.poll_failed_runs} scheduled runs"
    mime_type = "text/markdown"
    content   = <<-EOT
      No `poll.completed` log line for ${var.monitoring.poll_failed_runs} poll intervals of ${local.poll_interval_minutes} min: every run failed, or none ran. Jobs are neither tracked nor announced meanwhile (nothing is lost: the next completed run catches up).

      - `poll.failed` lines (ERROR): the job store (Firestore) is unreachable or refuses the poll function's account.
      - No line at all: check the Cloud Scheduler job `${google_cloud_scheduler_job.poll.name}` (its last attempt's status), the scheduler account's `roles/run.invoker` on the poll function, and the function's own errors.

      ${local.alert_documentation_footer}
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.poll_interval_minutes >= 1
      error_message = "Set monitoring.poll_interval_minutes: poll_schedule.cron is not of the form */k * * * *, so the minutes between two poll runs cannot be read from it."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "rejections" {
  project               = var.project_id
  display_name          = "${var.prefix}: inputs rejected"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.monitoring.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "More than ${var.monitoring.rejections_per_hour} inputs rejected within an hour"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.inputs_rejected.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = var.monitoring.rejections_per_hour
      duration                = "60s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    subject   = "${var.prefix}: more than ${var.monitoring.rejections_per_hour} inputs rejected within an hour"
    mime_type = "text/markdown"
    content   = <<-EOT
      Inputs are being refused. Each has an `input.rejected` event on the completion topic and a `rejection.json` report in the output bucket under its job id; the chart "Inputs rejected" of the dashboard splits them by error code.

      - `INPUT.MODEL_NOT_ALLOWED`, `INPUT.LOCATION_NOT_ALLOWED`, `INPUT.FILE_URI_NOT_ALLOWED`: not in the allow-lists (pipeline.allowed_models, allowed_locations, allowed_file_uri_prefixes).
      - Other `INPUT.*` codes: the uploaded files themselves are refused (malformed lines, too large, wrong format; the report lists the first bad lines).
      - `CAPACITY.EXHAUSTED`: inputs waited longer than pipeline.max_queue_hours for capacity.
      - `VERTEX.*`: Vertex AI refused the create (quota, permissions of the Vertex AI service agent).

      ${local.alert_documentation_footer}
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "jobs_failed" {
  project               = var.project_id
  display_name          = "${var.prefix}: batch jobs ended ${join(" or ", var.monitoring.job_alert_states)}"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.monitoring.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "A job ended in ${join(", ", var.monitoring.job_alert_states)}"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.jobs_finished.name}\" AND metric.label.state=one_of(${join(",", [for s in var.monitoring.job_alert_states : "\"${s}\""])})"
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "60s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.state"]
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    subject   = "${var.prefix}: a Vertex AI batch job ended ${join(" or ", var.monitoring.job_alert_states)}"
    mime_type = "text/markdown"
    content   = <<-EOT
      A Vertex AI batch job reached a terminal state listed in monitoring.job_alert_states. Its `job.completed` event (state, error, counts) went to the completion topic; the `job.finished` log line has its `jobId` and `vertexJob`.

      - `JOB_STATE_FAILED`: the job's `error` says why (often the Vertex AI service agent's access to the output bucket, or a malformed request Vertex AI found).
      - `JOB_STATE_EXPIRED`: the job waited in Vertex AI's queue for 72 hours without starting (shared capacity); upload the input again later.

      ${local.alert_documentation_footer}
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "queue_age" {
  project               = var.project_id
  display_name          = "${var.prefix}: inputs waiting too long for capacity"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.monitoring.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "Oldest waiting input older than ${var.monitoring.queue_age_alert_hours} h"
    condition_threshold {
      filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.queue_oldest_wait.name}\""
      # The threshold is a bucket bound of the metric (metrics.tf): the 99th percentile of a run's
      # value exceeds it exactly when that value does.
      comparison              = "COMPARISON_GT"
      threshold_value         = local.queue_age_alert_seconds
      duration                = "60s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "${local.poll_window_seconds}s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    subject   = "${var.prefix}: an input has waited more than ${var.monitoring.queue_age_alert_hours} h for capacity"
    mime_type = "text/markdown"
    content   = <<-EOT
      Inputs of a model with a concurrency cap (Claude: pipeline.anthropic_max_concurrent_jobs) wait first-in first-out until a slot frees; the oldest has now waited more than ${var.monitoring.queue_age_alert_hours} h. Past pipeline.max_queue_hours it is rejected (`CAPACITY.EXHAUSTED`).

      - Long-running jobs hold the slots: see "Jobs finished" and the jobs in the Vertex AI console.
      - The cap may be below your quota: raise pipeline.anthropic_max_concurrent_jobs if Vertex AI allows more.

      ${local.alert_documentation_footer}
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.poll_interval_minutes >= 1
      error_message = "Set monitoring.poll_interval_minutes: poll_schedule.cron is not of the form */k * * * *, so the minutes between two poll runs cannot be read from it."
    }
  }

  depends_on = [google_project_service.apis]
}
