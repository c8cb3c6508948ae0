# Inputs. Every variable is typed and described; validations refuse what Google Cloud or the code
# would refuse later, so that mistakes surface at `terraform plan` instead of at run time.

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
  description = "Region of the functions, the Cloud Scheduler job and (unless bucket_location is set) the buckets."
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

# --- Buckets --------------------------------------------------------------------------------------

variable "bucket_location" {
  type        = string
  description = "Location of the input, output and source buckets (a region such as us-central1, or a multi-region such as US). null: the region variable. The Eventarc trigger listens in this location."
  default     = null
  validation {
    condition     = var.bucket_location == null || can(regex("^[A-Za-z]+[A-Za-z0-9-]*[A-Za-z0-9]$", var.bucket_location))
    error_message = "bucket_location must be a Cloud Storage location such as us-central1, US or EU."
  }
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) used as the default encryption key of the three buckets; in the buckets' location. null: Google-managed keys. The Cloud Storage service agent is granted use of the key. Vertex AI batch jobs are not yet given the key (see README)."
  default     = null
  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name must be projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "output_retention_days" {
  type        = number
  description = "Delete objects in the output bucket this many days after they were written. null: keep them."
  default     = null
  validation {
    condition     = var.output_retention_days == null || try(var.output_retention_days >= 1 && floor(var.output_retention_days) == var.output_retention_days, false)
    error_message = "output_retention_days must be a whole number of days, at least 1, or null."
  }
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Let `terraform destroy` delete the input and output buckets even when they hold objects (prompts and results). Keep false unless tearing down on purpose."
  default     = false
}

# --- Firestore ------------------------------------------------------------------------------------

variable "create_firestore_database" {
  type        = bool
  description = "Create the (default) Firestore database in native mode. Leave false when the project already has one (a project has one (default) database, and its location can never change)."
  default     = false
}

variable "firestore_location" {
  type        = string
  description = "Location of the (default) Firestore database when create_firestore_database is true (a region such as us-central1, or nam5 / eur3). null: the region variable."
  default     = null
  validation {
    condition     = var.firestore_location == null || can(regex("^[a-z]+[a-z0-9-]*[0-9]$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location such as us-central1, nam5 or eur3."
  }
}

variable "jobs_collection" {
  type        = string
  description = "Firestore collection of job records (JOBS_COLLECTION); the poller's composite index is declared on it."
  default     = "batchJobs"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.jobs_collection))
    error_message = "jobs_collection must be a collection id of letters, digits, _ and - (at most 100)."
  }
}

# --- Pub/Sub --------------------------------------------------------------------------------------

variable "completion_topic_retention" {
  type        = string
  description = "How long the completion topic keeps published messages (message_retention_duration), so that a subscription created or seeked later can replay them. Seconds with an s suffix, 600s to 2678400s (31 days)."
  default     = "604800s"
  validation {
    condition = (
      can(regex("^[0-9]+s$", var.completion_topic_retention))
      && try(tonumber(trimsuffix(var.completion_topic_retention, "s")) >= 600 && tonumber(trimsuffix(var.completion_topic_retention, "s")) <= 2678400, false)
    )
    error_message = "completion_topic_retention must be between 600s and 2678400s."
  }
}

variable "create_example_subscription" {
  type        = bool
  description = "Create an example pull subscription on the completion topic (to try the pipeline with `gcloud pubsub subscriptions pull`)."
  default     = false
}

# --- Functions ------------------------------------------------------------------------------------

variable "runtime" {
  type        = string
  description = "Cloud Functions Node.js runtime of both functions. nodejs20 and older are decommissioned and refused."
  default     = "nodejs22"
  validation {
    condition = (
      can(regex("^nodejs[0-9]+$", var.runtime))
      && !contains(["nodejs6", "nodejs8", "nodejs10", "nodejs12", "nodejs14", "nodejs16", "nodejs18", "nodejs20"], var.runtime)
    )
    error_message = "runtime must be a Node.js runtime that still accepts deployments (nodejs22, nodejs24, ...); nodejs20 and older are decommissioned."
  }
}

variable "ingress_settings" {
  type        = string
  description = "Ingress of both functions. ALLOW_INTERNAL_ONLY still admits Eventarc and Cloud Scheduler of the same project; ALLOW_ALL lets you call the poller from outside (invocation always needs roles/run.invoker)."
  default     = "ALLOW_INTERNAL_ONLY"
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress_settings)
    error_message = "ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "build_service_account" {
  type        = string
  description = "Service account Cloud Build uses to build both functions (projects/P/serviceAccounts/EMAIL). null: the project's default build service account, which needs roles/cloudbuild.builds.builder."
  default     = null
  validation {
    condition     = var.build_service_account == null || can(regex("^projects/[^/]+/serviceAccounts/[^/]+@[^/]+$", var.build_service_account))
    error_message = "build_service_account must be projects/P/serviceAccounts/EMAIL."
  }
}

variable "submit_memory" {
  type        = string
  description = "Memory of the submit function (validates the input file as a stream)."
  default     = "512Mi"
  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.submit_memory))
    error_message = "submit_memory must look like 256Mi, 512M or 1Gi."
  }
}

variable "submit_timeout_seconds" {
  type        = number
  description = "Timeout of the submit function, in seconds (event-driven functions allow at most 540)."
  default     = 540
  validation {
    condition     = var.submit_timeout_seconds >= 60 && var.submit_timeout_seconds <= 540
    error_message = "submit_timeout_seconds must be between 60 and 540."
  }
}

variable "submit_max_instances" {
  type        = number
  description = "Maximum instances of the submit function (uploads arriving together beyond this wait for Eventarc's retry)."
  default     = 10
  validation {
    condition     = var.submit_max_instances >= 1 && var.submit_max_instances <= 1000
    error_message = "submit_max_instances must be between 1 and 1000."
  }
}

variable "poll_memory" {
  type        = string
  description = "Memory of the poll function."
  default     = "256Mi"
  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.poll_memory))
    error_message = "poll_memory must look like 256Mi, 512M or 1Gi."
  }
}

variable "poll_timeout_seconds" {
  type        = number
  description = "Timeout of the poll function, in seconds. Must exceed the poll's own time budget (POLL_TIME_BUDGET_SECONDS = 120 in shared/function-targets.ts), after which a run stops and leaves the rest to the next one."
  default     = 180
  validation {
    condition     = var.poll_timeout_seconds > 120 && var.poll_timeout_seconds <= 3600
    error_message = "poll_timeout_seconds must be above 120 (the poll time budget) and at most 3600."
  }
}

variable "poll_max_instances" {
  type        = number
  description = "Maximum instances of the poll function (2 lets an overlapping run answer instead of queueing; the poller is safe under overlap)."
  default     = 2
  validation {
    condition     = var.poll_max_instances >= 1 && var.poll_max_instances <= 100
    error_message = "poll_max_instances must be between 1 and 100."
  }
}

# --- Function configuration (CONTRACT §2) ---------------------------------------------------------

variable "vertex_location" {
  type        = string
  description = "VERTEX_LOCATION: region of the batch jobs (global uses the global endpoint). Keep it equal to the bucket location where the model allows."
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$|^global$", var.vertex_location))
    error_message = "vertex_location must be a region such as us-central1, or global."
  }
}

variable "anthropic_location" {
  type        = string
  description = "ANTHROPIC_LOCATION: region of batch jobs for publishers/anthropic models."
  default     = "us-east5"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$|^global$", var.anthropic_location))
    error_message = "anthropic_location must be a region such as us-east5."
  }
}

variable "default_model" {
  type        = string
  description = "DEFAULT_MODEL: model for input files that do not name one in their `model` metadata."
  default     = "publishers/google/models/gemini-2.5-flash"
  validation {
    condition     = length(trimspace(var.default_model)) > 0
    error_message = "default_model must not be empty."
  }
}

variable "input_prefix" {
  type        = string
  description = "INPUT_PREFIX: only objects of the input bucket whose name starts with it are inputs (empty: the whole bucket), e.g. incoming/."
  default     = ""
  validation {
    condition     = !startswith(var.input_prefix, "/")
    error_message = "input_prefix is an object name prefix and must not start with /."
  }
}

variable "max_event_age_seconds" {
  type        = number
  description = "MAX_EVENT_AGE_SECONDS: an upload event older than this is logged and dropped instead of retried (Eventarc retries for up to 24 hours)."
  default     = 86400
  validation {
    condition     = var.max_event_age_seconds >= 60 && floor(var.max_event_age_seconds) == var.max_event_age_seconds
    error_message = "max_event_age_seconds must be a whole number of seconds, at least 60."
  }
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of both functions: debug, info, warning or error."
  default     = "info"
  validation {
    condition     = contains(["debug", "info", "warning", "error"], var.log_level)
    error_message = "log_level must be debug, info, warning or error."
  }
}

variable "anthropic_max_concurrent_jobs" {
  type        = number
  description = "ANTHROPIC_MAX_CONCURRENT_JOBS: Claude batch jobs running at once (Vertex's default quota is 4 per project); more inputs wait in the queue and are submitted first-in first-out. 0: no limit."
  default     = 4
  validation {
    condition     = var.anthropic_max_concurrent_jobs >= 0 && floor(var.anthropic_max_concurrent_jobs) == var.anthropic_max_concurrent_jobs
    error_message = "anthropic_max_concurrent_jobs must be a whole number, 0 for no limit."
  }
}

variable "max_job_age_hours" {
  type        = number
  description = "MAX_JOB_AGE_HOURS: cancel and announce a job still unfinished after this many hours. 0 (default): off; Vertex itself expires jobs queued for 72 hours."
  default     = 0
  validation {
    condition     = var.max_job_age_hours >= 0
    error_message = "max_job_age_hours must be 0 (off) or a positive number of hours."
  }
}

# --- Cloud Scheduler ------------------------------------------------------------------------------

variable "poll_schedule" {
  type        = string
  description = "Cron schedule (5 fields) of the poll run."
  default     = "*/5 * * * *"
  validation {
    condition     = can(regex("^\\S+( \\S+){4}$", var.poll_schedule))
    error_message = "poll_schedule must be a 5-field cron expression such as */5 * * * *."
  }
}

variable "time_zone" {
  type        = string
  description = "Time zone (tz database name) in which poll_schedule is read."
  default     = "Etc/UTC"
  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.time_zone))
    error_message = "time_zone must be a tz database name such as Etc/UTC or Europe/Berlin."
  }
}

variable "scheduler_attempt_deadline_seconds" {
  type        = number
  description = "How long Cloud Scheduler waits for a poll run to answer. Must exceed the poll's time budget (120 s) and should not be below poll_timeout_seconds; Cloud Scheduler allows 15-1800."
  default     = 180
  validation {
    condition     = var.scheduler_attempt_deadline_seconds > 120 && var.scheduler_attempt_deadline_seconds <= 1800
    error_message = "scheduler_attempt_deadline_seconds must be above 120 (the poll time budget) and at most 1800."
  }
}

variable "scheduler_retry_count" {
  type        = number
  description = "How many times Cloud Scheduler retries a failed poll run before waiting for the next scheduled one."
  default     = 1
  validation {
    condition     = var.scheduler_retry_count >= 0 && var.scheduler_retry_count <= 5
    error_message = "scheduler_retry_count must be between 0 and 5."
  }
}
