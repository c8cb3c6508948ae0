# Providers and the project-level facts every other file reads.

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

# The project number names Google-managed identities: the Compute Engine default service account
# (the default build account) and the Pub/Sub service agent.
data "google_project" "this" {
  project_id = var.project_id
}
