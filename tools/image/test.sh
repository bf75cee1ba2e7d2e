#!/usr/bin/env bash
# make image-test: builds the image (make image) and runs it with buildah,
# daemonless: `surgeon plugins verify` and a tiny `surgeon apply` (2 steps
# of LoRA on stories260K and the SMS fixture) inside the image, as its
# non-root user, the fixtures mounted read-only and the output on a
# mounted folder. Installs buildah with apt when missing; skips, saying
# why, without root, apt or the fixtures (SURGEON_REQUIRE_IMAGE=1 makes
# that a failure).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
fixtures=${SURGEON_FIXTURES:-$root/../shared/fixtures}
tag=${IMAGE:-surgeon:latest}
driver=${BUILDAH_STORAGE_DRIVER:-vfs}
start=$SECONDS
say() { echo "image-test: $*"; }
skip() {
  if [ "${SURGEON_REQUIRE_IMAGE:-0}" = 1 ]; then say "FAIL: $*" >&2; exit 1; fi
  say "SKIP: $*"; exit 0
}
fail() { say "FAIL: $*" >&2; exit 1; }

[ -f "$fixtures/stories260K-gguf/stories260K.gguf" ] || skip "no fixtures in $fixtures"
if ! command -v buildah >/dev/null; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || skip "buildah is not installed (and no root apt-get to install it)"
  say "installing buildah from apt"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null; } || skip "apt-get install buildah failed"
fi
[ "$(id -u)" = 0 ] || skip "needs root (buildah with chroot isolation and vfs storage)"

say "building $tag"
make --no-print-directory image IMAGE="$tag"
for b in bin/static/surgeon bin/static/plugins/surgeon-plugin-*; do
  # A static binary has no program interpreter (no PT_INTERP header).
  head=$(od -An -c -N 4096 "$b" | tr -d ' \n')
  if [[ $head == *ld-linux* ]]; then fail "$b is dynamically linked"; fi
done

T=$(mktemp -d /tmp/surgeon-image.XXXXXX)
ctr=""
cleanup() {
  rc=$?
  [ -n "$ctr" ] && buildah --storage-driver "$driver" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/out"
chmod 777 "$T/out" # the image's user (65532) writes there
cat > "$T/out/tiny.toml" <<'TOML'
[model]
path = "/fixtures/stories260K-gguf/stories260K.gguf"
task = "sequence-classification"
labels = ["ham", "spam"]
max_length = 48

[data]
train = "/fixtures/sms-spam-collection/SMSSpamCollection"
format = "tsv"
text_field = "SMS"
label_field = "Label"
test_fraction = 0.2
max_examples = 100

[[targets]]
modules = ["q_proj", "v_proj"]
[targets.config]
r = 4
lora_alpha = 8

[train]
max_steps = 2
batch_size = 8

[output]
dir = "run"
TOML
ctr=$(buildah --storage-driver "$driver" from "$tag")
user=$(buildah --storage-driver "$driver" inspect --format '{{.OCIv1.Config.User}}' "$ctr")
[ "$user" = "65532:65532" ] || fail "the image runs as $user, want the non-root 65532:65532"
run() {
  timeout 300 buildah --storage-driver "$driver" run --isolation chroot --user 65532:65532 \
    -v "$fixtures:/fixtures:ro" -v "$T/out:/out" --workingdir /work "$ctr" -- "$@"
}
say "surgeon plugins verify (in the image)"
run surgeon plugins verify
say "surgeon apply (in the image)"
run surgeon apply /out/tiny.toml
[ -s "$T/out/run/report.json" ] || fail "no report.json from the apply in the image"
grep -q '"steps": 2' "$T/out/run/report.json" || fail "the apply in the image did not train 2 steps"
[ "$(stat -c %u "$T/out/run/report.json")" = 65532 ] || fail "report.json was not written by the image's user"
# Earlier builds of the tag are left untagged by this one: drop them, so
# that repeated runs do not fill the disk (vfs keeps full copies).
buildah --storage-driver "$driver" rmi --prune >/dev/null 2>&1 || true
say "PASS in $((SECONDS - start)) s"
