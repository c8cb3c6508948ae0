# Firestore: the job records. A project has one (default) database whose location can never change,
# so it is created here only on request; the poller's composite index is always declared.

resource "google_firestore_database" "default" {
  count = var.firestore.create_database ? 1 : 0

  project                 = var.project_id
  name                    = "(default)"
  location_id             = coalesce(var.firestore.location, var.region)
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  # Job records outlive the deployment: `terraform destroy` forgets the database, it never deletes it.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.apis]
}

# The poller's query, where(outstanding == true).orderBy(createTime), needs this index
# (OUTSTANDING_JOBS_INDEX in shared/adapters/job-index.ts; a test compares both). Production Firestore refuses
# the query without it; the emulator does not, so only this declaration guarantees it exists.
resource "google_firestore_index" "outstanding_jobs" {
  project     = var.project_id
  database    = "(default)"
  collection  = var.firestore.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "outstanding"
    order      = "ASCENDING"
  }

  fields {
    field_path = "createTime"
    order      = "ASCENDING"
  }

  depends_on = [google_project_service.apis, google_firestore_database.default]
}

# The operators' listing, `batch-courier jobs --status S` (newest first:
# where(status == S).orderBy(createTime desc)), needs this index (RECENT_JOBS_INDEX in
# shared/adapters/recent-jobs-index.ts; a test compares both). Without a status filter the listing
# uses Firestore's automatic single-field index of createTime.
resource "google_firestore_index" "recent_jobs" {
  project     = var.project_id
  database    = "(default)"
  collection  = var.firestore.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "createTime"
    order      = "DESCENDING"
  }

  depends_on = [google_project_service.apis, google_firestore_database.default]
}
