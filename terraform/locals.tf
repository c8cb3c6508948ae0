locals {
  # Bucket names are global: the project id makes them unique without random suffixes.
  bucket_prefix   = "${var.prefix}-${var.project_id}"
  bucket_location = coalesce(var.bucket_location, var.region)

  labels = merge({ application = "batch-courier" }, var.labels)

  # The environment of both functions: exactly CONFIG_VARIABLE_NAMES of shared/config.ts (CONTRACT
  # §2), plus LOG_EXECUTION_ID so that the functions framework stamps execution ids on log lines.
  # test/terraform/terraform.test.ts compares these names with the code's list.
  function_environment = {
    GOOGLE_CLOUD_PROJECT          = var.project_id
    VERTEX_LOCATION               = var.vertex_location
    DEFAULT_MODEL                 = var.default_model
    ANTHROPIC_LOCATION            = var.anthropic_location
    OUTPUT_URI_PREFIX             = "gs://${google_storage_bucket.output.name}"
    INPUT_PREFIX                  = var.input_prefix
    COMPLETION_TOPIC              = google_pubsub_topic.completion.id
    JOBS_COLLECTION               = var.jobs_collection
    MAX_EVENT_AGE_SECONDS         = tostring(var.max_event_age_seconds)
    LOG_LEVEL                     = var.log_level
    ANTHROPIC_MAX_CONCURRENT_JOBS = tostring(var.anthropic_max_concurrent_jobs)
    MAX_JOB_AGE_HOURS             = tostring(var.max_job_age_hours)
    LOG_EXECUTION_ID              = "true"
  }
}
