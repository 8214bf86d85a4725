/**
 * The guide sections `contree_get_guide` and `contree://guide/{section}` serve. Same section
 * names as the official server; the text is this project's own.
 */
export const GUIDE: Readonly<Record<string, string>> = {
  workflow: `# Working with ConTree

1. Look for a prepared image: \`contree_list_images\` with \`tag_prefix\` (e.g. "common/").
2. Only if nothing fits, import one: \`contree_import_image\` (slow; do it once).
3. Install what you need with \`contree_run\` and \`disposable: false\`: the saved filesystem comes
   back as \`result.image\`. Tag it with \`contree_set_tag\` so the next session finds it.
4. Do the work with runs from that image. Every image is immutable: going back is just using an
   older UUID again.

One step per run keeps every intermediate state reachable.`,
  reference: `# Tools at a glance

| Tool | What it does | Starts a sandbox |
|---|---|---|
| contree_run | run a command from an image (disposable or saved) | yes |
| contree_fork | run N commands from one image in parallel, N result images | yes |
| contree_import_image | pull an OCI image from a registry | yes |
| contree_list_images / contree_get_image / contree_set_tag | find, inspect, tag images | no |
| contree_upload / contree_rsync | send a file / a local directory for a run's files | no |
| contree_list_files / contree_read_file / contree_download | look into an image | no |
| contree_diff | what changed between an image and its parent (or any image), text diffs inline | no |
| contree_get_operation / contree_list_operations / contree_wait_operations / contree_cancel_operation | follow runs started with wait=false | no |

Images are named by UUID or by "tag:NAME".
Resources: contree://image/{image}/read/{path}, contree://image/{image}/ls/{path},
contree://image/{image}/lineage, contree://operations/instance/{id}, contree://operations/import/{id},
contree://guide/{section}.`,
  quickstart: `# Quick start

Run a command: \`{"command": "uname -a", "image": "tag:busybox:latest"}\`.

Save a state: \`{"command": "echo 1 > /state", "image": "<uuid>", "disposable": false}\` → use
\`result.image\` for the next run.

Send files: \`contree_upload {"content": "print(42)"}\` → uuid, then
\`contree_run {"command": "python /app/main.py", "image": "...", "files": {"/app/main.py": "<uuid>"}}\`.
A whole directory: \`contree_rsync {"source": "/home/me/project", "destination": "/app"}\` → id, then
\`"directory_state_id": id\`.

Read without a sandbox: \`contree_read_file\`, \`contree_list_files\`; what a run changed:
\`contree_diff {"image": "<result uuid>", "text": true}\`.`,
  state: `# State and branching

A run never changes its input image. With \`disposable: false\` the run's filesystem becomes a new
image (\`result.image\`); with \`disposable: true\` (the default) it is discarded.

To branch, start several runs from the same image (or one \`contree_fork\` call); each result is
its own image. To roll back, run from the earlier UUID. \`contree://image/{uuid}/lineage\` shows an
image's parent chain and children.`,
  async: `# Waiting and parallel work

\`wait: true\` (default) answers when the run is over. For parallel work start runs with
\`wait: false\`, collect the operation ids, then call \`contree_wait_operations\` once
(mode "all", or "any" to take the first and cancel the rest). \`contree_fork\` does spawn-and-wait in
one call. Cancel what is no longer needed with \`contree_cancel_operation\`; cancelling a
\`contree_run\` tool call also cancels its operation.

Statuses: PENDING, EXECUTING, SUCCESS, FAILED, CANCELLED. SUCCESS means the sandbox ran: the
command's own result is \`metadata.result.state.exit_code\`.`,
  tagging: `# Tags

Tag images worth keeping: \`{scope}/{purpose}/{base}\` where scope is "common" or a project name,
e.g. "common/python-ml/python:3.11-slim" or "myproject/dev/ubuntu:noble". Search with
\`contree_list_images {"tag_prefix": "common/"}\`; use with \`"image": "tag:common/..."\`. Tagged
images are kept; untagged ones may expire when unused.`,
  errors: `# When something fails

- Non-zero \`exit_code\` with status SUCCESS: the command failed; read stderr.
- \`timed_out: true\`: raise \`timeout\` (seconds) or split the work.
- Output ending early: \`truncated\` is set; raise \`truncate_output_at\` or write to a file and
  read it with \`contree_read_file\` from the saved image.
- "image not found": check \`contree_list_images\`; tags are written "tag:NAME".
- Tool errors (isError) carry the server's message: fix the argument it names and call again.`,
};
