# Inputs, grouped like a form: the project and the names are flat; everything else is one object
# per part of the deployment whose attributes are optional() with defaults, in the manner of Cloud
# Foundation Fabric's cloud-function-v2 module (function_config, trigger_config). A tfvars file
# sets only what it changes. Validations refuse what Google Cloud or the code would refuse later,
# so that mistakes surface at `terraform plan` instead of at run time.

# --- Project and naming ---------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Project to deploy into (its id, not its number)."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, the Cloud Scheduler job and (unless buckets.location is set) the buckets."
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "prefix" {
  type        = string
  description = "Prefix of every resource name (buckets add the project id, since bucket names are global). No random suffixes are added."
  default     = "batch-courier"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 3-16 lowercase letters, digits and hyphens, start with a letter and not end with a hyphen (service account ids allow 30 characters)."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels (buckets, topic, subscription, functions), next to application = \"batch-courier\"."
  default     = {}
  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must be 1-63 lowercase letters, digits, _ or - starting with a letter; values at most 63 of the same characters."
  }
}

# --- The pipeline: each attribute is one environment variable of both functions ------------------

variable "pipeline" {
  type = object({
    default_model                 = optional(string, "publishers/google/models/gemini-2.5-flash")
    vertex_location               = optional(string, "us-central1")
    anthropic_location            = optional(string, "us-east5")
    input_prefix                  = optional(string, "")
    max_event_age_seconds         = optional(number, 86400)
    anthropic_max_concurrent_jobs = optional(number, 4)
    max_job_age_hours             = optional(number, 96)
    max_queue_hours               = optional(number, 72)
    allowed_models                = optional(list(string), [])
    allowed_locations             = optional(list(string), [])
    allowed_file_uri_prefixes     = optional(list(string), [])
    max_estimated_cost_usd        = optional(number, 0)
    price_table                   = optional(string, "")
    retry_failed_rows             = optional(number, 1)
    log_level                     = optional(string, "info")
  })
  description = <<-EOT
    How the functions behave. Each attribute sets the environment variable of the same name in upper case (shared/config.ts); lists are joined with commas.
    default_model: model for input files without `model` metadata.
    vertex_location: region of the batch jobs (global uses the global endpoint).
    anthropic_location: region of batch jobs for publishers/anthropic models.
    input_prefix: only objects whose name starts with it are inputs, e.g. incoming/ (empty: the whole bucket).
    max_event_age_seconds: an upload event older than this is logged and dropped instead of retried (Eventarc retries for up to 24 hours).
    anthropic_max_concurrent_jobs: Claude batch jobs running at once (Vertex AI's default quota is 4 per project); more inputs wait and are submitted first-in first-out. 0: no limit.
    max_job_age_hours: ask Vertex AI to cancel a job not finished this many hours after it was created, and announce the outcome. 0: off.
    max_queue_hours: an input waiting for capacity longer than this is rejected (CAPACITY.EXHAUSTED).
    allowed_models: models an input may name (short names work; an entry without @version allows every version). []: default_model plus the code's short list. ["*"]: any model.
    allowed_locations: regions an input may pick with its `location` metadata. []: vertex_location, anthropic_location and the code's short list. ["*"]: any region.
    allowed_file_uri_prefixes: where a Gemini request's fileData.fileUri may point (gs:// or https:// prefixes). []: the input's own bucket only. ["*"]: anywhere.
    max_estimated_cost_usd: reject an input whose estimated cost (an upper bound: bytes / 4 input tokens, each request's output maximum) is above this many US dollars, before anything is spent (INPUT.OVER_BUDGET). 0: no limit.
    retry_failed_rows: how many more times the rows that failed for a transient reason (quota, internal, unavailable, deadline) are sent again as a job of their own; 0: never (0-5).
    price_table: JSON merged over the built-in price table (shared/core/prices.json), e.g. jsonencode({ date = "2026-11-01", models = { "gemini-2.5-flash" = { input = 0.15, output = 1.25 } } }). "": the built-in table.
    log_level: debug, info, warning or error.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = length(trimspace(var.pipeline.default_model)) > 0
    error_message = "pipeline.default_model must not be empty."
  }
  validation {
    condition = alltrue([
      for l in [var.pipeline.vertex_location, var.pipeline.anthropic_location] : can(regex("^[a-z]+-[a-z]+[0-9]+$|^global$", l))
    ])
    error_message = "pipeline.vertex_location and pipeline.anthropic_location must be regions such as us-central1, or global."
  }
  validation {
    condition     = !startswith(var.pipeline.input_prefix, "/")
    error_message = "pipeline.input_prefix is an object name prefix and must not start with /."
  }
  validation {
    condition     = var.pipeline.max_event_age_seconds >= 60 && floor(var.pipeline.max_event_age_seconds) == var.pipeline.max_event_age_seconds
    error_message = "pipeline.max_event_age_seconds must be a whole number of seconds, at least 60."
  }
  validation {
    condition     = var.pipeline.anthropic_max_concurrent_jobs >= 0 && floor(var.pipeline.anthropic_max_concurrent_jobs) == var.pipeline.anthropic_max_concurrent_jobs
    error_message = "pipeline.anthropic_max_concurrent_jobs must be a whole number, 0 for no limit."
  }
  validation {
    condition     = var.pipeline.max_job_age_hours >= 0
    error_message = "pipeline.max_job_age_hours must be 0 (off) or a positive number of hours."
  }
  validation {
    condition     = var.pipeline.max_queue_hours > 0
    error_message = "pipeline.max_queue_hours must be a positive number of hours."
  }
  # The three lists become comma-separated variables: the patterns are the code's, and none admits a
  # comma inside an entry.
  validation {
    condition     = alltrue([for m in var.pipeline.allowed_models : can(regex("^[A-Za-z0-9*][A-Za-z0-9._@/*-]*$", m))])
    error_message = "pipeline.allowed_models entries must be model names (letters, digits, . _ @ / * -), or \"*\"."
  }
  validation {
    condition     = alltrue([for l in var.pipeline.allowed_locations : can(regex("^(\\*|global|[a-z]+(-[a-z0-9]+)+)$", l))])
    error_message = "pipeline.allowed_locations entries must be regions such as europe-west4, global, or \"*\"."
  }
  validation {
    condition     = alltrue([for p in var.pipeline.allowed_file_uri_prefixes : can(regex("^(\\*|gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?|https://\\S+)$", p))])
    error_message = "pipeline.allowed_file_uri_prefixes entries must be gs://bucket[/prefix] or https://... prefixes, or \"*\"."
  }
  validation {
    condition     = var.pipeline.retry_failed_rows >= 0 && var.pipeline.retry_failed_rows <= 5 && floor(var.pipeline.retry_failed_rows) == var.pipeline.retry_failed_rows
    error_message = "pipeline.retry_failed_rows must be a whole number from 0 to 5."
  }
  validation {
    condition     = var.pipeline.max_estimated_cost_usd >= 0
    error_message = "pipeline.max_estimated_cost_usd must be 0 (no limit) or a positive amount of US dollars."
  }
  validation {
    condition     = var.pipeline.price_table == "" || can(jsondecode(var.pipeline.price_table).models)
    error_message = "pipeline.price_table must be \"\" or JSON with \"date\" and \"models\" (see shared/core/prices.json)."
  }
  validation {
    condition     = contains(["debug", "info", "warning", "error"], var.pipeline.log_level)
    error_message = "pipeline.log_level must be debug, info, warning or error."
  }
}

# --- The two functions ----------------------------------------------------------------------------

variable "submit_function" {
  type = object({
    memory           = optional(string, "512Mi")
    timeout_seconds  = optional(number, 540)
    min_instances    = optional(number, 0)
    max_instances    = optional(number, 10)
    ingress_settings = optional(string, "ALLOW_INTERNAL_ONLY")
  })
  description = <<-EOT
    The submit function (submitBatchJob, one run per upload event).
    memory: memory of an instance (it validates the input file as a stream).
    timeout_seconds: 60-540 (the maximum of event-driven functions).
    min_instances: instances kept warm (billed while idle); 0 scales to zero.
    max_instances: uploads arriving together beyond this wait for Eventarc's retry.
    ingress_settings: ALLOW_INTERNAL_ONLY still admits Eventarc of the same project; invocation always needs roles/run.invoker.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.submit_function.memory))
    error_message = "submit_function.memory must look like 256Mi, 512M or 1Gi."
  }
  validation {
    condition     = var.submit_function.timeout_seconds >= 60 && var.submit_function.timeout_seconds <= 540
    error_message = "submit_function.timeout_seconds must be between 60 and 540."
  }
  validation {
    condition = (
      var.submit_function.min_instances >= 0
      && var.submit_function.max_instances >= 1 && var.submit_function.max_instances <= 1000
      && var.submit_function.min_instances <= var.submit_function.max_instances
    )
    error_message = "submit_function: max_instances must be between 1 and 1000, min_instances between 0 and max_instances."
  }
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.submit_function.ingress_settings)
    error_message = "submit_function.ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "poll_function" {
  type = object({
    memory           = optional(string, "1Gi")
    timeout_seconds  = optional(number, 300)
    min_instances    = optional(number, 0)
    max_instances    = optional(number, 2)
    ingress_settings = optional(string, "ALLOW_INTERNAL_ONLY")
  })
  description = <<-EOT
    The poll function (pollBatchJobs, called by Cloud Scheduler).
    memory: memory of an instance; it also sets its CPU (0.58 vCPU at 1Gi, 0.17 at 256Mi), which the results digest of a large job needs (npm run bench:digest: 1 GB of output takes about 60 CPU seconds and 310 MiB).
    timeout_seconds: above the poll's own time budget plus a results digest started at its end (POLL_TIME_BUDGET_SECONDS = 120 in shared/function-targets.ts, after which a run starts no new work, plus DIGEST_TIME_LIMIT_SECONDS = 150 in shared/core/transitions.ts: 270 s), at most 3600.
    min_instances: instances kept warm (billed while idle); 0 scales to zero.
    max_instances: 2 lets an overlapping run answer instead of queueing (the poller is safe under overlap).
    ingress_settings: ALLOW_INTERNAL_ONLY still admits Cloud Scheduler of the same project; ALLOW_ALL lets you call the poller from outside (invocation always needs roles/run.invoker).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.poll_function.memory))
    error_message = "poll_function.memory must look like 256Mi, 512M or 1Gi."
  }
  validation {
    condition     = var.poll_function.timeout_seconds > 270 && var.poll_function.timeout_seconds <= 3600
    error_message = "poll_function.timeout_seconds must be above 270 (the poll time budget plus a digest) and at most 3600."
  }
  validation {
    condition = (
      var.poll_function.min_instances >= 0
      && var.poll_function.max_instances >= 1 && var.poll_function.max_instances <= 100
      && var.poll_function.min_instances <= var.poll_function.max_instances
    )
    error_message = "poll_function: max_instances must be between 1 and 100, min_instances between 0 and max_instances."
  }
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.poll_function.ingress_settings)
    error_message = "poll_function.ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "build" {
  type = object({
    runtime            = optional(string, "nodejs22")
    service_account    = optional(string)
    grant_builder_role = optional(bool, false)
  })
  description = <<-EOT
    How Cloud Build builds both functions.
    runtime: Node.js runtime of both functions; nodejs20 and older are decommissioned and refused.
    service_account: email of a service account of this project for the builds to run as. null: the project's default build service account (in projects created since mid-2024, the Compute Engine default service account).
    grant_builder_role: grant roles/cloudbuild.builds.builder on the project to that account (service_account, or the Compute Engine default one). Needed where the default build account lacks it, e.g. organisations that disable automatic grants to default service accounts.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition = (
      can(regex("^nodejs[0-9]+$", var.build.runtime))
      && !contains(["nodejs6", "nodejs8", "nodejs10", "nodejs12", "nodejs14", "nodejs16", "nodejs18", "nodejs20"], var.build.runtime)
    )
    error_message = "build.runtime must be a Node.js runtime that still accepts deployments (nodejs22, nodejs24, ...); nodejs20 and older are decommissioned."
  }
  validation {
    condition     = var.build.service_account == null || can(regex("^[a-z0-9][a-z0-9-]{4,62}@[a-z0-9.-]+\\.gserviceaccount\\.com$", var.build.service_account))
    error_message = "build.service_account must be the email of a service account of this project, or null."
  }
}

variable "grant_pubsub_token_creator" {
  type        = bool
  description = "Grant the Pub/Sub service agent roles/iam.serviceAccountTokenCreator on the Eventarc trigger's service account, so that it can mint the identity tokens of event deliveries. Only projects whose Pub/Sub service agent was created on or before 2021-04-08 need it; Google grants it in newer ones."
  default     = false
  nullable    = false
}

# --- Cloud Scheduler ------------------------------------------------------------------------------

variable "poll_schedule" {
  type = object({
    cron                     = optional(string, "*/5 * * * *")
    time_zone                = optional(string, "Etc/UTC")
    attempt_deadline_seconds = optional(number, 300)
    retry_count              = optional(number, 1)
  })
  description = <<-EOT
    When Cloud Scheduler runs the poll.
    cron: 5-field cron schedule.
    time_zone: tz database name in which cron is read.
    attempt_deadline_seconds: how long Cloud Scheduler waits for a run to answer; above the poll's time budget plus a digest (270 s), at most 1800; keep it at least poll_function.timeout_seconds.
    retry_count: retries of a failed run before the next scheduled one (0-5).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = can(regex("^\\S+( \\S+){4}$", var.poll_schedule.cron))
    error_message = "poll_schedule.cron must be a 5-field cron expression such as */5 * * * *."
  }
  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.poll_schedule.time_zone))
    error_message = "poll_schedule.time_zone must be a tz database name such as Etc/UTC or Europe/Berlin."
  }
  validation {
    condition     = var.poll_schedule.attempt_deadline_seconds > 270 && var.poll_schedule.attempt_deadline_seconds <= 1800
    error_message = "poll_schedule.attempt_deadline_seconds must be above 270 (the poll time budget plus a digest) and at most 1800."
  }
  validation {
    condition     = var.poll_schedule.retry_count >= 0 && var.poll_schedule.retry_count <= 5
    error_message = "poll_schedule.retry_count must be between 0 and 5."
  }
}

# --- Storage, Firestore, Pub/Sub -----------------------------------------------------------------

variable "buckets" {
  type = object({
    location              = optional(string)
    kms_key_name          = optional(string)
    output_retention_days = optional(number)
    force_destroy         = optional(bool, false)
  })
  description = <<-EOT
    The input, output and source buckets.
    location: a region such as us-central1, or a multi-region such as US. null: the region variable. The Eventarc trigger listens in this location.
    kms_key_name: Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K, in the buckets' location) used as the default encryption key of the three buckets; the Cloud Storage service agent is granted its use. null: Google-managed keys. Not yet passed to the Vertex AI jobs (see README).
    output_retention_days: delete objects in the output bucket this many days after they were written. null: keep them.
    force_destroy: let `terraform destroy` delete the input and output buckets even when they hold objects (prompts and results). Keep false unless tearing down on purpose.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = var.buckets.location == null || can(regex("^[A-Za-z]+[A-Za-z0-9-]*[A-Za-z0-9]$", var.buckets.location))
    error_message = "buckets.location must be a Cloud Storage location such as us-central1, US or EU."
  }
  validation {
    condition     = var.buckets.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.buckets.kms_key_name))
    error_message = "buckets.kms_key_name must be projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
  validation {
    condition     = var.buckets.output_retention_days == null || try(var.buckets.output_retention_days >= 1 && floor(var.buckets.output_retention_days) == var.buckets.output_retention_days, false)
    error_message = "buckets.output_retention_days must be a whole number of days, at least 1, or null."
  }
}

variable "firestore" {
  type = object({
    create_database = optional(bool, false)
    location        = optional(string)
    jobs_collection = optional(string, "batchJobs")
  })
  description = <<-EOT
    The job records.
    create_database: create the (default) Firestore database in native mode. Leave false when the project already has one (a project has one (default) database, and its location can never change).
    location: location of that database (a region such as us-central1, or nam5 / eur3). null: the region variable.
    jobs_collection: JOBS_COLLECTION, the collection of job records; the poller's composite index is declared on it.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = var.firestore.location == null || can(regex("^[a-z]+[a-z0-9-]*[0-9]$", var.firestore.location))
    error_message = "firestore.location must be a Firestore location such as us-central1, nam5 or eur3."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.firestore.jobs_collection))
    error_message = "firestore.jobs_collection must be a collection id of letters, digits, _ and - (at most 100)."
  }
}

variable "pubsub" {
  type = object({
    message_retention_duration  = optional(string, "604800s")
    create_example_subscription = optional(bool, false)
  })
  description = <<-EOT
    The completion topic.
    message_retention_duration: how long the topic keeps published messages, so that a subscription created or seeked later can replay them; 600s to 2678400s (31 days).
    create_example_subscription: create an example pull subscription on the topic (to try the pipeline with `gcloud pubsub subscriptions pull`).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition = (
      can(regex("^[0-9]+s$", var.pubsub.message_retention_duration))
      && try(tonumber(trimsuffix(var.pubsub.message_retention_duration, "s")) >= 600 && tonumber(trimsuffix(var.pubsub.message_retention_duration, "s")) <= 2678400, false)
    )
    error_message = "pubsub.message_retention_duration must be between 600s and 2678400s."
  }
}

# --- BigQuery -------------------------------------------------------------------------------------

variable "bigquery_datasets" {
  type        = list(object({ dataset = string, project = optional(string) }))
  description = <<-EOT
    BigQuery datasets that manifests (objects named *.batch.json) may name as a job's source table or as its destination. Sets ALLOWED_BIGQUERY_DATASETS (each project.dataset, joined with commas); for each dataset, both functions may read its tables and the Vertex AI service agent may read and write them (iam.tf); a non-empty list also enables the BigQuery API. []: none, and no BigQuery resource at all (manifests over Cloud Storage files still work).
    dataset: the dataset id.
    project: the dataset's project. null: project_id.
  EOT
  default     = []
  nullable    = false

  # Terraform's regex (RE2) refuses repeat counts above 1000, hence + and length() for 1024.
  validation {
    condition     = alltrue([for d in var.bigquery_datasets : can(regex("^[A-Za-z0-9_]+$", d.dataset)) && length(d.dataset) <= 1024])
    error_message = "bigquery_datasets: each dataset must be a dataset id: letters, digits and _, at most 1024."
  }
  validation {
    condition     = alltrue([for d in var.bigquery_datasets : d.project == null || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", d.project))])
    error_message = "bigquery_datasets: each project must be null (project_id) or a project id: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

# --- Monitoring -----------------------------------------------------------------------------------

variable "monitoring" {
  type = object({
    notification_channels = optional(list(string), [])
    poll_failed_runs      = optional(number, 3)
    poll_interval_minutes = optional(number)
    rejections_per_hour   = optional(number, 10)
    job_alert_states      = optional(list(string), ["JOB_STATE_FAILED", "JOB_STATE_EXPIRED"])
    queue_age_alert_hours = optional(number, 6)
  })
  description = <<-EOT
    The alert policies (the log-based metrics and the dashboard need no setting).
    notification_channels: notification channels of every alert policy, as ids projects/P/notificationChannels/N. []: incidents only show in the console.
    poll_failed_runs: alert when this many scheduled poll runs in a row did not complete (each failed, or none ran).
    poll_interval_minutes: minutes between two scheduled poll runs. null: read from poll_schedule.cron, which must then have the form */k * * * *.
    rejections_per_hour: alert when more inputs than this were rejected within an hour.
    job_alert_states: alert on every job that ends in one of these states.
    queue_age_alert_hours: alert when an input has waited longer than this for capacity (below pipeline.max_queue_hours, after which it is rejected); less than 168.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for c in var.monitoring.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "monitoring.notification_channels entries must be projects/P/notificationChannels/N."
  }
  validation {
    condition     = var.monitoring.poll_failed_runs >= 1 && floor(var.monitoring.poll_failed_runs) == var.monitoring.poll_failed_runs
    error_message = "monitoring.poll_failed_runs must be a whole number, at least 1."
  }
  validation {
    condition     = var.monitoring.poll_interval_minutes == null || try(var.monitoring.poll_interval_minutes >= 1 && floor(var.monitoring.poll_interval_minutes) == var.monitoring.poll_interval_minutes, false)
    error_message = "monitoring.poll_interval_minutes must be a whole number of minutes, at least 1, or null."
  }
  validation {
    condition     = var.monitoring.rejections_per_hour >= 0
    error_message = "monitoring.rejections_per_hour must be 0 (alert on any rejection) or more."
  }
  validation {
    condition = length(var.monitoring.job_alert_states) > 0 && alltrue([
      for s in var.monitoring.job_alert_states : contains(["JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"], s)
    ])
    error_message = "monitoring.job_alert_states must list terminal job states: JOB_STATE_FAILED, JOB_STATE_EXPIRED, JOB_STATE_CANCELLED, JOB_STATE_PARTIALLY_SUCCEEDED or JOB_STATE_SUCCEEDED."
  }
  validation {
    condition     = var.monitoring.queue_age_alert_hours > 0 && var.monitoring.queue_age_alert_hours < 168
    error_message = "monitoring.queue_age_alert_hours must be above 0 and below 168."
  }
}
