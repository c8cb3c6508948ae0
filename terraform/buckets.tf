# Input (uploads), output (Vertex AI results) and source (function archives) buckets. All three:
# uniform bucket-level access (IAM only, no ACLs), public access prevention enforced, optional CMEK.

resource "google_storage_bucket" "input" {
  project                     = var.project_id
  name                        = "${local.bucket_prefix}-input"
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.buckets.force_destroy
  labels                      = local.labels

  dynamic "encryption" {
    for_each = var.buckets.kms_key_name == null ? [] : [var.buckets.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.gcs_agent_uses_key]
}

resource "google_storage_bucket" "output" {
  project                     = var.project_id
  name                        = "${local.bucket_prefix}-output"
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.buckets.force_destroy
  labels                      = local.labels

  dynamic "encryption" {
    for_each = var.buckets.kms_key_name == null ? [] : [var.buckets.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.buckets.output_retention_days == null ? [] : [var.buckets.output_retention_days]
    content {
      action {
        type = "Delete"
      }
      condition {
        age = lifecycle_rule.value
      }
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.gcs_agent_uses_key]
}

# Holds only the zipped artifact Terraform uploads (one object, replaced when the code changes), so
# destroying it never loses data.
resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${local.bucket_prefix}-source"
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  dynamic "encryption" {
    for_each = var.buckets.kms_key_name == null ? [] : [var.buckets.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.gcs_agent_uses_key]
}
