# The deployable artifacts staged by `npm run package`: one folder per function under artifact/,
# named after its entry point (its bundle, a package.json whose one dependency is the functions
# framework, and the lock file cut down to that dependency). Each is zipped and uploaded under a
# name derived from its content: a change to one function's code is a new object for that function
# only, which rebuilds and redeploys it alone.

locals {
  artifact_dir = "${path.module}/../artifact"
  # The functions' entry points (FUNCTION_TARGETS of shared/function-targets.ts): one bundle each.
  function_bundles = toset(["submitBatchJob", "pollBatchJobs"])
}

data "archive_file" "source" {
  for_each    = local.function_bundles
  type        = "zip"
  source_dir  = "${local.artifact_dir}/${each.key}"
  output_path = "${path.module}/.terraform/batch-courier-${each.key}.zip"
  # The same permissions on every machine, so that the hash depends on the content only.
  output_file_mode = "0644"

  lifecycle {
    precondition {
      condition     = fileexists("${local.artifact_dir}/${each.key}/package.json")
      error_message = "No staged artifact for ${each.key}: run `npm ci && npm run package` in the repository root first."
    }
  }
}

resource "google_storage_bucket_object" "source" {
  for_each     = local.function_bundles
  name         = "${each.key}-${data.archive_file.source[each.key].output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source[each.key].output_path
  content_type = "application/zip"
}
