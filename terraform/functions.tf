# The two Cloud Functions (gen2), each built from its own bundle (terraform/source.tf). Entry points
# are FUNCTION_TARGETS of shared/function-targets.ts, each registered by its bundle's index.js.
#
# The upload trigger is the function's own event_trigger block rather than a separate
# google_eventarc_trigger: Cloud Functions then creates, updates and deletes the Eventarc trigger
# together with the function, wires its destination to the function's current service, exposes
# retry_policy directly, and shows the trigger on the function in the console and in
# `gcloud functions describe`.

resource "google_cloudfunctions2_function" "submit" {
  project     = var.project_id
  name        = "${var.prefix}-submit"
  location    = var.region
  description = "submitBatchJob: a finalized JSONL upload in the input bucket becomes one Vertex AI batch prediction job."
  labels      = local.labels

  build_config {
    runtime         = var.build.runtime
    entry_point     = "submitBatchJob"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source["submitBatchJob"].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.submit.email
    available_memory               = var.submit_function.memory
    timeout_seconds                = var.submit_function.timeout_seconds
    min_instance_count             = var.submit_function.min_instances
    max_instance_count             = var.submit_function.max_instances
    ingress_settings               = var.submit_function.ingress_settings
    all_traffic_on_latest_revision = true
    environment_variables          = merge(local.function_environment, local.submit_runtime_environment)
  }

  event_trigger {
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
    # A Cloud Storage trigger must live in the bucket's location (the API reports it upper-case).
    trigger_region = lower(google_storage_bucket.input.location)

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.input.name
    }
  }

  # Eventarc refuses to create a Cloud Storage trigger until the Cloud Storage service agent may
  # publish and the trigger's identity may receive events; the build needs its builder role, and
  # (in old projects) deliveries need the Pub/Sub service agent's token grant.
  depends_on = [
    google_project_service.apis,
    google_project_iam_member.gcs_agent_pubsub_publisher,
    google_project_iam_member.trigger_event_receiver,
    google_project_iam_member.build_account_builder,
    google_service_account_iam_member.pubsub_agent_mints_trigger_tokens,
  ]
}

resource "google_cloudfunctions2_function" "poll" {
  project     = var.project_id
  name        = "${var.prefix}-poll"
  location    = var.region
  description = "pollBatchJobs: reconciles outstanding jobs with Vertex AI and announces every outcome on the completion topic."
  labels      = local.labels

  build_config {
    runtime         = var.build.runtime
    entry_point     = "pollBatchJobs"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source["pollBatchJobs"].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.poll.email
    available_memory               = var.poll_function.memory
    timeout_seconds                = var.poll_function.timeout_seconds
    min_instance_count             = var.poll_function.min_instances
    max_instance_count             = var.poll_function.max_instances
    ingress_settings               = var.poll_function.ingress_settings
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment
  }

  depends_on = [google_project_service.apis, google_project_iam_member.build_account_builder]
}
