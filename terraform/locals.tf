locals {
  # Bucket names are global: the project id makes them unique without random suffixes.
  bucket_prefix   = "${var.prefix}-${var.project_id}"
  bucket_location = coalesce(var.buckets.location, var.region)

  labels = merge({ application = "batch-courier" }, var.labels)

  # build_config.service_account of both functions takes a resource name; null leaves the builds
  # to the project's default build service account.
  build_service_account = (
    var.build.service_account == null ? null : "projects/${var.project_id}/serviceAccounts/${var.build.service_account}"
  )

  # The service account Cloud Build runs the functions' builds as: the one chosen, or else the
  # Compute Engine default service account, the default build account of projects created since
  # mid-2024 (https://cloud.google.com/build/docs/cloud-build-service-account-updates).
  build_service_account_email = coalesce(
    var.build.service_account,
    "${data.google_project.this.number}-compute@developer.gserviceaccount.com",
  )

  # The BigQuery datasets of var.bigquery_datasets by "project.dataset", each with its project
  # resolved (null: the deployment's) and the same dataset named twice kept once. The functions'
  # ALLOWED_BIGQUERY_DATASETS lists its keys; iam.tf grants for_each of it, so an empty list makes
  # no BigQuery grant.
  bigquery_datasets = {
    for key, same in {
      for d in var.bigquery_datasets : "${coalesce(d.project, var.project_id)}.${d.dataset}" => {
        project = coalesce(d.project, var.project_id)
        dataset = d.dataset
      }...
    } : key => same[0]
  }

  # The environment of both functions: exactly CONFIG_VARIABLE_NAMES of shared/config.ts, plus
  # LOG_EXECUTION_ID so that the functions framework stamps execution ids on log lines. Each
  # setting comes from the attribute of the same name in lower case; lists are joined with commas,
  # as the code reads them. ALLOWED_BIGQUERY_DATASETS is the one exception: it lists the datasets
  # of var.bigquery_datasets, which the grants are made from too. test/terraform/parity.test.ts
  # compares names and defaults with the code.
  function_environment = {
    GOOGLE_CLOUD_PROJECT          = var.project_id
    VERTEX_LOCATION               = var.pipeline.vertex_location
    DEFAULT_MODEL                 = var.pipeline.default_model
    ANTHROPIC_LOCATION            = var.pipeline.anthropic_location
    OUTPUT_URI_PREFIX             = "gs://${google_storage_bucket.output.name}"
    INPUT_PREFIX                  = var.pipeline.input_prefix
    COMPLETION_TOPIC              = google_pubsub_topic.completion.id
    JOBS_COLLECTION               = var.firestore.jobs_collection
    MAX_EVENT_AGE_SECONDS         = tostring(var.pipeline.max_event_age_seconds)
    ANTHROPIC_MAX_CONCURRENT_JOBS = tostring(var.pipeline.anthropic_max_concurrent_jobs)
    MAX_JOB_AGE_HOURS             = tostring(var.pipeline.max_job_age_hours)
    MAX_QUEUE_HOURS               = tostring(var.pipeline.max_queue_hours)
    ALLOWED_MODELS                = join(",", var.pipeline.allowed_models)
    ALLOWED_LOCATIONS             = join(",", var.pipeline.allowed_locations)
    ALLOWED_FILE_URI_PREFIXES     = join(",", var.pipeline.allowed_file_uri_prefixes)
    ALLOWED_BIGQUERY_DATASETS     = join(",", keys(local.bigquery_datasets))
    MAX_ESTIMATED_COST_USD        = tostring(var.pipeline.max_estimated_cost_usd)
    PRICE_TABLE                   = var.pipeline.price_table
    RETRY_FAILED_ROWS             = tostring(var.pipeline.retry_failed_rows)
    LOG_LEVEL                     = var.pipeline.log_level
    LOG_EXECUTION_ID              = "true"
  }

  # The submit function's own: a small young generation, since it streams uploads of up to a
  # gigabyte and what it allocates per line dies young (README "Speed"; FUNCTION_NODE_OPTIONS in
  # shared/function-targets.ts). The poll function keeps Node's defaults.
  submit_runtime_environment = {
    NODE_OPTIONS = "--max-semi-space-size=1"
  }
}
