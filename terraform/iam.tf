# Every grant of the pipeline, each on the narrowest resource that works, with the reason beside it.
# Project level only where a role has no narrower scope: Vertex AI jobs, Firestore documents,
# Eventarc event receipt, Cloud Build, BigQuery jobs and read sessions. Invoking a function is
# granted on that function's Cloud Run service only, never on the project. All grants are additive
# (*_iam_member): authoritative bindings would remove what others granted.
# test/terraform/iam.test.ts holds the same list.
#
# Storage, in short: inputs are read from the input bucket; before a job is created the function
# copies exactly the validated generation of the input to <OUTPUT_URI_PREFIX>/<jobId>/input.jsonl
# (a server-side rewrite, create-only) and the Vertex AI job reads that copy, so a later upload of
# the same name cannot change what is billed. No function reads the output bucket: prompts and
# answers stay out of the functions' reach.

# --- Eventarc: Cloud Storage events for the submit function --------------------------------------

# Cloud Storage publishes bucket events to Eventarc's Pub/Sub transport as its service agent.
resource "google_project_iam_member" "gcs_agent_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# The trigger's identity receives the events (project level: Eventarc has no narrower scope).
resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

# The trigger delivers each event by calling the submit function's service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_submit" {
  project  = var.project_id
  location = google_cloudfunctions2_function.submit.location
  name     = google_cloudfunctions2_function.submit.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# Only with grant_pubsub_token_creator: in projects whose Pub/Sub service agent was created on or
# before 2021-04-08 it lacks the right to mint the identity tokens Eventarc's push deliveries carry
# (https://cloud.google.com/eventarc/docs/roles-permissions). Google's page grants it on the
# project; the tokens minted are the trigger account's only, so the grant is on that account.
resource "google_service_account_iam_member" "pubsub_agent_mints_trigger_tokens" {
  count = var.grant_pubsub_token_creator ? 1 : 0

  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# --- Cloud Build ---------------------------------------------------------------------------------

# Only with build.grant_builder_role: since mid-2024 new projects build functions as the Compute
# Engine default service account, which may lack this role (for example where an organisation
# policy disables automatic grants to default service accounts), and the deploy then fails
# (https://cloud.google.com/functions/docs/securing/build-custom-sa). Project level: builds have no
# narrower scope.
resource "google_project_iam_member" "build_account_builder" {
  count = var.build.grant_builder_role ? 1 : 0

  project = var.project_id
  role    = "roles/cloudbuild.builds.builder"
  member  = "serviceAccount:${local.build_service_account_email}"
}

# --- submit function -----------------------------------------------------------------------------

# Creates and looks up the Vertex AI batch prediction jobs (project level: no narrower scope).
resource "google_project_iam_member" "submit_aiplatform_user" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.submit.email}"
}

# Reads and writes the job records (project level: Firestore has no narrower scope).
resource "google_project_iam_member" "submit_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.submit.email}"
}

# Validates the uploaded file, and is the source of the pinned copy (a rewrite reads its source).
resource "google_storage_bucket_iam_member" "submit_reads_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.submit.email}"
}

# Creates the pinned input copy and, for a refused input, its rejection.json report under the job's
# output prefix. Create only, never read or overwrite: both are written once per object generation.
resource "google_storage_bucket_iam_member" "submit_writes_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.submit.email}"
}

moved {
  from = google_storage_bucket_iam_member.submit_writes_reports
  to   = google_storage_bucket_iam_member.submit_writes_output
}

# The submit function itself announces a refused input with an `input.rejected` event.
resource "google_pubsub_topic_iam_member" "submit_publishes_rejections" {
  project = var.project_id
  topic   = google_pubsub_topic.completion.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.submit.email}"
}

# --- poll function -------------------------------------------------------------------------------

# Reads, lists, creates (queued inputs) and cancels (max_job_age_hours) batch prediction jobs.
resource "google_project_iam_member" "poll_aiplatform_user" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.poll.email}"
}

# Reads and writes the job records (project level: Firestore has no narrower scope).
resource "google_project_iam_member" "poll_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.poll.email}"
}

# Announces every outcome on the completion topic.
resource "google_pubsub_topic_iam_member" "poll_publishes_completions" {
  project = var.project_id
  topic   = google_pubsub_topic.completion.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.poll.email}"
}

# The poller submits queued inputs and finishes submissions whose function died: it validates the
# input and copies it, like the submit function.
resource "google_storage_bucket_iam_member" "poll_reads_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.poll.email}"
}

# Creates the pinned input copy and rejection reports of the inputs it submits, and digests each
# finished job: lists and reads its prediction files, writes results.jsonl, failed.jsonl and
# summary.json, and deletes the digest's temporary parts (objectUser: read, list, create, delete;
# no IAM and no bucket settings). Only the output bucket.
resource "google_storage_bucket_iam_member" "poll_writes_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.poll.email}"
}

moved {
  from = google_storage_bucket_iam_member.poll_writes_reports
  to   = google_storage_bucket_iam_member.poll_writes_output
}

# --- Cloud Scheduler -----------------------------------------------------------------------------

# The scheduler's OIDC token admits it to the poll function's service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_poll" {
  project  = var.project_id
  location = google_cloudfunctions2_function.poll.location
  name     = google_cloudfunctions2_function.poll.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- Vertex AI service agent: the batch jobs read and write Cloud Storage as this identity --------

# Gemini requests may point at files with fileData.fileUri, by default only in the input bucket
# (pipeline.allowed_file_uri_prefixes); Vertex AI reads them as its service agent.
resource "google_storage_bucket_iam_member" "vertex_reads_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

# The job's input is the pinned copy <OUTPUT_URI_PREFIX>/<jobId>/input.jsonl in the output bucket.
resource "google_storage_bucket_iam_member" "vertex_reads_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

# The job writes its predictions under <OUTPUT_URI_PREFIX>/<jobId>/.
resource "google_storage_bucket_iam_member" "vertex_writes_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

# --- BigQuery (only with bigquery_datasets) ------------------------------------------------------
#
# A manifest may name a BigQuery table as a job's source and a dataset (or a table in it) as its
# destination, in the datasets of var.bigquery_datasets only (ALLOWED_BIGQUERY_DATASETS). Each
# grant on a dataset is made once per dataset (for_each of local.bigquery_datasets), on that dataset
# in its own project, and none exists while the list is empty. google_bigquery_dataset_iam_member
# adds one entry to the dataset's access list; the provider warns that it must not share a dataset
# with `access` blocks or google_bigquery_dataset_access managed elsewhere, and that it drops the
# dataset's authorized-view entries (terraform/README.md, IAM).

# Validates a BigQuery source before submitting: tables.get (schema, location, row count),
# datasets.get (the destination dataset's location) and tabledata.list (every row's request).
# dataViewer rather than metadataViewer: tabledata.list needs bigquery.tables.getData, which the
# metadata role lacks. No project-level role: none of these calls is a BigQuery job.
resource "google_bigquery_dataset_iam_member" "submit_reads_datasets" {
  for_each = local.bigquery_datasets

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.submit.email}"

  depends_on = [google_project_service.apis]
}

# Digests each finished job over BigQuery: reads its output table (tables.get, tabledata.list) to
# count the rows and write the summary files, and the source table's rows to match them against;
# validates again the source of each queued manifest it submits, like the submit function. The
# same read-only role.
resource "google_bigquery_dataset_iam_member" "poll_reads_datasets" {
  for_each = local.bigquery_datasets

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.poll.email}"

  depends_on = [google_project_service.apis]
}

# The batch job reads the source table (tables.getData) and creates and fills its output table in
# the destination dataset (tables.create, tables.updateData) as the Vertex AI service agent.
# dataEditor is the narrowest predefined role with both, on the dataset only: no dataset creation,
# deletion or IAM.
resource "google_bigquery_dataset_iam_member" "vertex_edits_datasets" {
  for_each = local.bigquery_datasets

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_project_service_identity.vertex_ai.email}"

  depends_on = [google_project_service.apis]
}

# BigQuery jobs and Storage Read API sessions belong to a project, not to a dataset: the batch job
# runs them in this project as the Vertex AI service agent. Google's page on batch inference from
# BigQuery grants roles/bigquery.user on the project
# (https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-bigquery).
# The project-level part of it that a batch job uses is bigquery.jobs.create
# (roles/bigquery.jobUser, this grant) and bigquery.readsessions.* (roles/bigquery.readSessionUser,
# the next one), as in Vertex AI's own service agent roles; the rest (creating datasets, listing
# every dataset and table of the project) is left out, and table access comes from the dataset
# grants above. The agent's default role roles/aiplatform.serviceAgent holds these where it was
# granted, but Google grants no roles automatically to an agent created on request, as
# service-accounts.tf does (https://cloud.google.com/iam/docs/create-service-agents).
resource "google_project_iam_member" "vertex_runs_bigquery_jobs" {
  count = length(var.bigquery_datasets) > 0 ? 1 : 0

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

# Reads the source table through the BigQuery Storage Read API (read sessions are created in this
# project), as the previous comment says.
resource "google_project_iam_member" "vertex_reads_bigquery_sessions" {
  count = length(var.bigquery_datasets) > 0 ? 1 : 0

  project = var.project_id
  role    = "roles/bigquery.readSessionUser"
  member  = "serviceAccount:${google_project_service_identity.vertex_ai.email}"
}

# --- CMEK (only with buckets.kms_key_name) -------------------------------------------------------

# Cloud Storage encrypts and decrypts with the key as its service agent; readers need no key access.
resource "google_kms_crypto_key_iam_member" "gcs_agent_uses_key" {
  count = var.buckets.kms_key_name == null ? 0 : 1

  crypto_key_id = var.buckets.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}
