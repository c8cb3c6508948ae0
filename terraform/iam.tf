# Every grant of the pipeline, each on the narrowest resource that works (shared/FACTS.md "IAM").
# Project level only where a role has no narrower scope: Vertex AI jobs, Firestore documents and
# Eventarc event receipt. Invoking a function is granted on that function's Cloud Run service only,
# never on the project. test/terraform/terraform.test.ts compares this file with the table.

# --- Eventarc: Cloud Storage events for the submit function --------------------------------------

# Cloud Storage publishes bucket events to Eventarc's Pub/Sub transport as its service agent.
resource "google_project_iam_member" "gcs_agent_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_submit" {
  project  = var.project_id
  location = google_cloudfunctions2_function.submit.location
  name     = google_cloudfunctions2_function.submit.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# --- submit function -----------------------------------------------------------------------------

resource "google_project_iam_member" "submit_aiplatform_user" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.submit.email}"
}

resource "google_project_iam_member" "submit_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.submit.email}"
}

resource "google_storage_bucket_iam_member" "submit_reads_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.submit.email}"
}

# Not in FACTS.md's table: a rejected input's report (rejection.json) is written under the job's
# output prefix. Create only: the report of one object generation is written once.
resource "google_storage_bucket_iam_member" "submit_writes_reports" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.submit.email}"
}

# Not in FACTS.md's table, but required by CONTRACT §1: the submit function itself announces a
# refused input with an `input.rejected` event on the completion topic.
resource "google_pubsub_topic_iam_member" "submit_publishes_rejections" {
  project = var.project_id
  topic   = google_pubsub_topic.completion.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.submit.email}"
}

# --- poll function -------------------------------------------------------------------------------

resource "google_project_iam_member" "poll_aiplatform_user" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.poll.email}"
}

resource "google_project_iam_member" "poll_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.poll.email}"
}

resource "google_pubsub_topic_iam_member" "poll_publishes_completions" {
  project = var.project_id
  topic   = google_pubsub_topic.completion.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.poll.email}"
}

# Lists the results Vertex AI wrote.
resource "google_storage_bucket_iam_member" "poll_reads_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.poll.email}"
}

# Not in FACTS.md's table: the poller submits queued inputs and finishes submissions whose function
# died, which validates the input and may write its rejection report.
resource "google_storage_bucket_iam_member" "poll_reads_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.poll.email}"
}

resource "google_storage_bucket_iam_member" "poll_writes_reports" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.poll.email}"
}

# --- Cloud Scheduler -----------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_poll" {
  project  = var.project_id
  location = google_cloudfunctions2_function.poll.location
  name     = google_cloudfunctions2_function.poll.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- Vertex AI service agent: the batch jobs read inputs and write results as this identity -------

resource "google_storage_bucket_iam_member" "vertex_reads_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

resource "google_storage_bucket_iam_member" "vertex_writes_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

# --- CMEK (only with kms_key_name) ---------------------------------------------------------------

# Cloud Storage encrypts and decrypts with the key as its service agent; readers need no key access.
resource "google_kms_crypto_key_iam_member" "gcs_agent_uses_key" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}
