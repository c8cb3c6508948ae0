# The deployable artifact staged by `npm run package` (compiled code, package.json without dev tooling,
# package-lock.json), zipped and uploaded under a name derived from its content: a code change is a
# new object, which makes both functions rebuild and redeploy.

locals {
  artifact_dir = "${path.module}/../artifact"
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = local.artifact_dir
  output_path = "${path.module}/.terraform/batch-courier-source.zip"
  # The same permissions on every machine, so that the hash depends on the content only.
  output_file_mode = "0644"

  lifecycle {
    precondition {
      condition     = fileexists("${local.artifact_dir}/package.json")
      error_message = "No staged artifact: run `npm ci && npm run build && npm run package` in the repository root first."
    }
  }
}

resource "google_storage_bucket_object" "source" {
  name         = "source-${data.archive_file.source.output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}
