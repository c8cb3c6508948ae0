# The completion topic: one message per input object generation. The functions never
# create it at run time; Terraform owns it.

resource "google_pubsub_topic" "completion" {
  project                    = var.project_id
  name                       = "${var.prefix}-batch-completed"
  message_retention_duration = var.pubsub.message_retention_duration
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

# An example consumer: a pull subscription that keeps unacknowledged events for 7 days and never
# expires. Real consumers create their own (filtering on the eventType, state or model attributes).
resource "google_pubsub_subscription" "example" {
  count = var.pubsub.create_example_subscription ? 1 : 0

  project                    = var.project_id
  name                       = "${var.prefix}-batch-completed-example"
  topic                      = google_pubsub_topic.completion.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}
