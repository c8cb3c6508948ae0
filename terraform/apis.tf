# The APIs the pipeline uses. disable_on_destroy = false: other workloads in the project may use them
# too, and disabling an API on destroy can break them.

locals {
  required_services = [
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]

  # Only with bigquery_datasets: the functions read BigQuery tables, and the batch jobs run
  # BigQuery jobs and read sessions in this project.
  bigquery_services = length(var.bigquery_datasets) > 0 ? ["bigquery.googleapis.com"] : []

  services = concat(local.required_services, local.bigquery_services)
}

resource "google_project_service" "apis" {
  for_each = toset(local.services)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
