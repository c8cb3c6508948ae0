#!/usr/bin/env bash
# Shows that the model-based test catches real bugs: applies one deliberate bug at a time to the
# product code, runs the default schedule count, prints the shrunk schedule that broke the promise,
# and restores the file (also on Ctrl-C). Run from a clean work tree: `npm run fuzz:mutants`.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! git diff --quiet -- shared; then
  echo "fuzz:mutants: shared/ has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
trap 'git checkout -- shared' EXIT
missed=0

mutate() { # description, python that edits files in place
  echo "=== mutant: $1"
  python3 -c "$2" || { echo "could not apply: the code moved; update this script" >&2; exit 1; }
  local out
  out=$(FUZZ_SCHEDULES="${FUZZ_SCHEDULES:-5000}" npx vitest run test/model -t random 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' | sed -n '/A schedule broke/,/^Broken/p')
  if [ -n "$out" ]; then echo "$out"; else echo "NOT FOUND: the model-based test missed this bug"; missed=1; fi
  git checkout -- shared
}

edit='
import sys
def sub(path, old, new):
    s = open(path).read()
    if old not in s: sys.exit(f"{path}: pattern not found")
    open(path, "w").write(s.replace(old, new))
'

mutate "no fencing before create (no lease re-check, any worker records its job, no cancel of a loser's job)" "$edit
sub('shared/core/transitions.ts', \"cur.status === 'SUBMITTING' && holdsLease(cur, owner, now)\", \"cur.status === 'SUBMITTING'\")
sub('shared/core/transitions.ts', \"\"\"cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          status: 'SUBMITTED',\"\"\", \"\"\"cur.status === 'SUBMITTING'
      ? {
          ...cur,
          status: 'SUBMITTED',\"\"\")
sub('shared/app/submission.ts', 'await cancelDuplicate(record, job.name, latest.vertexJob, deps);', 'void 0;')
sub('shared/app/submission.ts', 'if (written.createAttempts > 1) {', 'if (written.createAttempts < 0) {')
sub('shared/app/submission.ts', '{ notAfter },', '{},')
"

mutate "publish before claim" "$edit
sub('shared/app/announce.ts', '  let claimed = await deps.jobs.update(jobId, claimAnnouncement(owner, deps.clock()));', '''  const unclaimed = await deps.jobs.get(jobId);
  let claimed = unclaimed && claimAnnouncement(owner, deps.clock())({ ...unclaimed, lease: null });''')
"

mutate "one queue per provider instead of per (model, location)" "$edit
sub('shared/core/jobs.ts', 'return \`\${base}@\${location}\`;', \"return model.includes('/anthropic/') ? 'anthropic' : 'google';\")
"

mutate "a manifest's files expanded again when its submission resumes (its pinned files not kept)" "$edit
sub('shared/app/submission.ts', 'if (requestCount === null || (await tableChanged(record, deps))) {', \"if (requestCount === null || record.manifest?.source.kind === 'gcs' || (await tableChanged(record, deps))) {\")
"

mutate "a changed table validated again before the job of a lost create is looked for" "$edit
sub('shared/app/submission.ts', '  // 1. A create whose answer was lost may have made a job', '''  if (record.manifest?.source.kind === 'bigquery' && record.requestCount !== null && (await tableChanged(record, deps))) {
    const checked = await validateSources(record, deps);
    if ('error' in checked) return reject(record, owner, deps, checked.error, checked.found);
  }
  // 1. A create whose answer was lost may have made a job''')
"

exit $missed
