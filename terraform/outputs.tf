# Outputs, all derived from the resources (not echoed from the inputs).

output "input_bucket" {
  description = "Bucket to upload JSONL files to."
  value       = google_storage_bucket.input.name
}

output "output_bucket" {
  description = "Bucket of each job's pinned input copy, results and rejection report, under <job id>/."
  value       = google_storage_bucket.output.name
}

output "source_bucket" {
  description = "Bucket holding the functions' source archive."
  value       = google_storage_bucket.source.name
}

output "completion_topic" {
  description = "Pub/Sub topic (projects/P/topics/T) of the completion events."
  value       = google_pubsub_topic.completion.id
}

output "example_subscription" {
  description = "The example pull subscription on the completion topic, or null when not created."
  value       = one(google_pubsub_subscription.example[*].id)
}

output "submit_function_uri" {
  description = "URI of the submit function's service (invoked by Eventarc only)."
  value       = google_cloudfunctions2_function.submit.service_config[0].uri
}

output "poll_function_uri" {
  description = "URI of the poll function's service (invoked by Cloud Scheduler only)."
  value       = google_cloudfunctions2_function.poll.service_config[0].uri
}

output "scheduler_job" {
  description = "Cloud Scheduler job that runs the poll; `gcloud scheduler jobs run` starts one now."
  value       = google_cloud_scheduler_job.poll.name
}

output "service_account_emails" {
  description = "Service accounts of the submit function, the poll function, the Eventarc trigger and the Cloud Scheduler job."
  value = {
    submit    = google_service_account.submit.email
    poll      = google_service_account.poll.email
    trigger   = google_service_account.trigger.email
    scheduler = google_service_account.scheduler.email
  }
}

output "vertex_ai_service_agent" {
  description = "Vertex AI service agent, as which the batch jobs read their pinned input copy and write results in the output bucket, read fileData files in the input bucket, and read and write the tables of bigquery_datasets."
  value       = google_project_service_identity.vertex_ai.email
}

output "upload_command" {
  description = "Ready-to-copy command for a first upload (reviews.jsonl is your file)."
  value       = "gcloud storage cp reviews.jsonl gs://${google_storage_bucket.input.name}/${var.pipeline.input_prefix}"
}

output "dashboard_url" {
  description = "The pipeline's Cloud Monitoring dashboard in the console."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${reverse(split("/", google_monitoring_dashboard.pipeline.id))[0]}?project=${var.project_id}"
}

output "alert_policies" {
  description = "The alert policies (projects/P/alertPolicies/N): poll_stalled, rejections, jobs_failed, queue_age."
  value       = local.dashboard_alerts
}

output "log_metrics" {
  description = "Metric type of each log-based metric, by name, for your own charts and alerts."
  value       = local.dashboard_metrics
}
