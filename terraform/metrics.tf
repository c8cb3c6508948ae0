# Log-based metrics: what the functions do, counted from their own structured log lines. Each line
# is one JSON object with a stable `event` name (shared/log-events.ts) and fields; Cloud Logging
# keeps it as jsonPayload. The alert policies (alerts.tf) and the dashboard (dashboard.tf) read
# these metrics; test/terraform/monitoring.test.ts checks each filter names an event the code logs.
#
# Metric names start with the prefix, so that two deployments in one project keep their own.

locals {
  # The functions' log entries: Cloud Functions (gen2) run as Cloud Run services named after the
  # function. Either function may log most events (the poll also submits queued inputs).
  function_logs_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(\"${google_cloudfunctions2_function.submit.name}\" OR \"${google_cloudfunctions2_function.poll.name}\")",
  ])

  # Upper bounds (seconds) of the buckets of the oldest waiting input's age. The alert threshold is
  # one of them, so that the alert's percentile lands above the threshold exactly when an age does.
  queue_age_alert_seconds = var.monitoring.queue_age_alert_hours * 3600
  queue_age_bounds_base   = [60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 259200, 345600, 604800]
  queue_age_bounds = concat(
    [for b in local.queue_age_bounds_base : b if b < local.queue_age_alert_seconds],
    [local.queue_age_alert_seconds],
    [for b in local.queue_age_bounds_base : b if b > local.queue_age_alert_seconds],
  )
}

resource "google_logging_metric" "inputs_received" {
  project     = var.project_id
  name        = "${var.prefix}/inputs_received"
  description = "Input files that arrived (one per object generation, duplicates of a delivery not counted twice)."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"input.received\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: inputs received"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "inputs_rejected" {
  project     = var.project_id
  name        = "${var.prefix}/inputs_rejected"
  description = "Inputs refused (invalid file, model or region not allowed, create refused, queued too long), counted when their input.rejected event is published; by error code."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"input.rejected\""

  label_extractors = {
    error_code = "EXTRACT(jsonPayload.errorCode)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: inputs rejected"
    labels {
      key         = "error_code"
      value_type  = "STRING"
      description = "The rejection's error code, e.g. INPUT.INVALID_JSONL."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "jobs_finished" {
  project     = var.project_id
  name        = "${var.prefix}/jobs_finished"
  description = "Vertex AI batch jobs that reached a terminal state, by state."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"job.finished\""

  label_extractors = {
    state = "EXTRACT(jsonPayload.state)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: jobs finished"
    labels {
      key         = "state"
      value_type  = "STRING"
      description = "The terminal job state, e.g. JOB_STATE_SUCCEEDED or JOB_STATE_FAILED."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "events_published" {
  project     = var.project_id
  name        = "${var.prefix}/events_published"
  description = "Events published on the completion topic, by event type and state."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=(\"job.completed\" OR \"input.rejected\")"

  label_extractors = {
    event_type = "EXTRACT(jsonPayload.event)"
    state      = "EXTRACT(jsonPayload.state)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: events published"
    labels {
      key         = "event_type"
      value_type  = "STRING"
      description = "job.completed or input.rejected."
    }
    labels {
      key         = "state"
      value_type  = "STRING"
      description = "The state the event announces."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "events_unpublishable" {
  project     = var.project_id
  name        = "${var.prefix}/events_unpublishable"
  description = "Completion events Pub/Sub refused for good (a missing topic or permission): outcomes nobody was told about."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"event.unpublishable\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: events unpublishable"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "digests" {
  project     = var.project_id
  name        = "${var.prefix}/digests"
  description = "Results digests of finished jobs: written (job.digested) or not (digest.failed)."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=(\"job.digested\" OR \"digest.failed\")"

  label_extractors = {
    event = "EXTRACT(jsonPayload.event)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: results digests"
    labels {
      key         = "event"
      value_type  = "STRING"
      description = "job.digested or digest.failed."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "poll_runs" {
  project     = var.project_id
  name        = "${var.prefix}/poll_runs"
  description = "Poll runs that completed (a failed run logs poll.failed instead)."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"poll.completed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: poll runs completed"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "poll_runs_truncated" {
  project     = var.project_id
  name        = "${var.prefix}/poll_runs_truncated"
  description = "Poll runs that stopped at their time budget and left jobs to the next run: a sign of more outstanding jobs than one run handles."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"poll.completed\" AND jsonPayload.truncated=true"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: poll runs truncated"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "poll_errors" {
  project     = var.project_id
  name        = "${var.prefix}/poll_errors"
  description = "Poll failures: a whole run (poll.failed: the job store is unreachable), one job (poll.job_failed) or one queued input (poll.submit_failed); by event."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=(\"poll.failed\" OR \"poll.job_failed\" OR \"poll.submit_failed\")"

  label_extractors = {
    event = "EXTRACT(jsonPayload.event)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix}: poll errors"
    labels {
      key         = "event"
      value_type  = "STRING"
      description = "poll.failed, poll.job_failed or poll.submit_failed."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "queue_waiting" {
  project         = var.project_id
  name            = "${var.prefix}/queue_waiting"
  description     = "Inputs waiting for capacity, as each poll run saw them (one value per run)."
  filter          = "${local.function_logs_filter} AND jsonPayload.event=\"poll.completed\""
  value_extractor = "EXTRACT(jsonPayload.waiting)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "${var.prefix}: inputs waiting"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "queue_oldest_wait" {
  project         = var.project_id
  name            = "${var.prefix}/queue_oldest_wait"
  description     = "Age of the oldest input waiting for capacity, as each poll run saw it (0 when none waits)."
  filter          = "${local.function_logs_filter} AND jsonPayload.event=\"poll.completed\""
  value_extractor = "EXTRACT(jsonPayload.oldestWaitingSeconds)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "${var.prefix}: oldest waiting input"
  }

  bucket_options {
    explicit_buckets {
      bounds = local.queue_age_bounds
    }
  }

  depends_on = [google_project_service.apis]
}
