# One service account per workload, so that each holds only its own grants (iam.tf).

resource "google_service_account" "submit" {
  project      = var.project_id
  account_id   = "${var.prefix}-submit"
  display_name = "batch-courier submitBatchJob function"
  description  = "Runs the submit function: reads uploads, creates Vertex AI batch jobs, records them in Firestore."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "poll" {
  project      = var.project_id
  account_id   = "${var.prefix}-poll"
  display_name = "batch-courier pollBatchJobs function"
  description  = "Runs the poll function: reconciles jobs with Vertex AI, publishes completion events."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${var.prefix}-trigger"
  display_name = "batch-courier Eventarc trigger"
  description  = "Identity of the Eventarc trigger that delivers upload events to the submit function."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.prefix}-scheduler"
  display_name = "batch-courier Cloud Scheduler job"
  description  = "Identity whose OIDC token Cloud Scheduler sends to the poll function."

  depends_on = [google_project_service.apis]
}

# Google-managed identities the grants need.

# Publishes the bucket's notifications to Eventarc's Pub/Sub transport.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

# Reads each job's pinned input copy and writes its results (and, with bigquery_datasets, the
# BigQuery tables of manifests). Created here so that its grants never race its lazy creation on
# first use of Vertex AI. Google does not promise roles to an agent created on request, so every
# grant it needs is in iam.tf.
resource "google_project_service_identity" "vertex_ai" {
  provider = google-beta

  project = var.project_id
  service = "aiplatform.googleapis.com"

  depends_on = [google_project_service.apis]
}
