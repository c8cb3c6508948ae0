# Provider and Terraform versions, bounded on both sides so that a new major release never changes
# what `terraform apply` does without a deliberate edit here.

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
    # Only for google_project_service_identity (the Vertex AI service agent): long beta-only, so the
    # beta provider works across the whole supported range.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.0, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}
