# Cloud Scheduler calls the poll function on a schedule with an OIDC token minted for the scheduler's
# service account, whose audience is the function's URI; the function's service admits it through
# roles/run.invoker (iam.tf) and nobody else.

resource "google_cloud_scheduler_job" "poll" {
  project     = var.project_id
  region      = var.region
  name        = "${var.prefix}-poll"
  description = "Runs pollBatchJobs: reconciles outstanding Vertex AI batch jobs and announces finished ones."
  schedule    = var.poll_schedule.cron
  time_zone   = var.poll_schedule.time_zone
  # Longer than the poll's own time budget, so that a run that stops on its budget still answers in
  # time and is not retried while it is working.
  attempt_deadline = "${var.poll_schedule.attempt_deadline_seconds}s"

  retry_config {
    retry_count          = var.poll_schedule.retry_count
    min_backoff_duration = "30s"
    max_backoff_duration = "120s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.poll.service_config[0].uri
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.poll.service_config[0].uri
    }
  }

  # The first run should find the invoker grant and the poller's index in place.
  depends_on = [
    google_project_service.apis,
    google_cloud_run_v2_service_iam_member.scheduler_invokes_poll,
    google_firestore_index.outstanding_jobs,
  ]
}
