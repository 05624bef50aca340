#!/usr/bin/env bash
# Pushes a locally built image to a registry, as <registry>/<repository>:<target>-<version>
# and <target>-<git short sha>, once it has checked that the image is what those tags
# say. See --help and docs/images.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Exit codes (also in --help and docs/images.md).
readonly EXIT_REFUSED=1 EXIT_USAGE=2 EXIT_TAG_HOLDS_OTHER=3 EXIT_NOT_AUTHORISED=4 EXIT_UNREACHABLE=5 EXIT_NO_REPOSITORY=6

usage() {
  cat <<'USAGE'
Usage: scripts/push.sh (--registry HOST[:PORT] | --ecr) [options]

Pushes the local image api:<target> as
  <registry>/<repository>:<target>-<version>     version from Cargo.toml
  <registry>/<repository>:<target>-<git sha>     the commit it was built from (7 characters)
then prints each pushed reference with the digest the push reported.

Steps: 1. check the local image, 2. login (with --ecr only; otherwise log in
yourself first with `docker login`), 3. look each tag up in the registry,
4. tag and push.

The local image must be what the tags say, or it is refused: its labels
(set by the build arguments, docs/images.md) must name HEAD's full commit
SHA as org.opencontainers.image.revision, Cargo.toml's version, an RFC 3339
build time and a base image digest, and it must be built for --platform.
The files it is built from (the build context, Dockerfile, .dockerignore)
must be committed; other local files do not matter.

Each tag is looked up first: a tag that is absent is pushed; a tag that
already holds this very image (same image id) is left as it is and counts
as pushed, so that a re-run succeeds; a tag that holds another image is an
error naming both, unless --force.

Where to:
  --registry HOST[:PORT]  any registry you are logged in to
  --ecr                   Amazon ECR: the host is <account>.dkr.ecr.<region>.amazonaws.com
                          (unless --registry names another) and the login runs
                          `aws ecr get-login-password --region R | docker login
                          --username AWS --password-stdin HOST`
  --account ID            AWS account id (default: $AWS_ACCOUNT_ID)
  --region REGION         AWS region (default: $AWS_REGION, then $AWS_DEFAULT_REGION)

What:
  --target NAME           staging or production (default: production)
  --local-image IMAGE     local image to push (default: api:<target>)
  --repository NAME       repository in the registry (default: api)
  --platform OS/ARCH      the platform the image must be built for (default: linux/amd64)
  --digest-file FILE      also write the pushed digest (sha256:...) to FILE

Safety:
  --dry-run               print every command, run none: needs neither Docker nor
                          AWS; with --ecr and no account or region, prints
                          <account> and <region> in their place
  --force                 overwrite tags that hold another image (not with --ecr:
                          ECR repositories are usually tag-immutable)
  --allow-dirty           push an image built from uncommitted changes (revision
                          <sha>-dirty); its sha tag is then <target>-<sha>-dirty
  --allow-unpinned-base   push an image whose base was not pinned by digest
  -h, --help              this help

Exit codes:
  0  every tag holds the image: pushed now, or already there
  1  refused before pushing: the local image (missing, unlabelled, another
     revision or version, another platform, unpinned base), uncommitted
     sources, --ecr without account or region; or another failure
  2  wrong usage
  3  a tag already holds another image (both digests are named)
  4  not authorised: not logged in, wrong credentials, or no permission
  5  registry unreachable: name, connection, TLS, or the registry failing (5xx)
  6  the repository does not exist (registries that do not create it on push, like ECR)
USAGE
}

# fail CODE MESSAGE: prints MESSAGE as an error and exits with CODE.
fail() {
  printf 'error: %s\n' "$2" >&2
  exit "$1"
}
usage_error() {
  usage >&2
  fail "$EXIT_USAGE" "$1"
}
# say MESSAGE: progress, on stderr (stdout carries only the results).
say() { printf '%s\n' "$*" >&2; }

target=production registry="" ecr=0 account=${AWS_ACCOUNT_ID:-} region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
local_image="" repository=api platform=linux/amd64 digest_file=""
dry_run=0 force=0 allow_dirty=0 allow_unpinned_base=0
while (($#)); do
  case $1 in
    --target | --registry | --account | --region | --local-image | --repository | --platform | --digest-file)
      (($# >= 2)) || usage_error "$1 needs a value" ;;
  esac
  case $1 in
    --target) target=$2; shift ;;
    --registry) registry=$2; shift ;;
    --ecr) ecr=1 ;;
    --account) account=$2; shift ;;
    --region) region=$2; shift ;;
    --local-image) local_image=$2; shift ;;
    --repository) repository=$2; shift ;;
    --platform) platform=$2; shift ;;
    --digest-file) digest_file=$2; shift ;;
    --dry-run) dry_run=1 ;;
    --force) force=1 ;;
    --allow-dirty) allow_dirty=1 ;;
    --allow-unpinned-base) allow_unpinned_base=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
  shift
done

[[ $target == staging || $target == production ]] || usage_error "--target must be staging or production, not '$target'"
local_image=${local_image:-api:$target}
if ((ecr)); then
  ((!force)) || fail "$EXIT_REFUSED" "--force is refused with --ecr: ECR tags are meant to be immutable; push a new version instead"
  if [[ -z $account || -z $region ]]; then
    ((dry_run)) || fail "$EXIT_REFUSED" "--ecr needs an AWS account and region: --account/--region or AWS_ACCOUNT_ID/AWS_REGION"
    say "dry run: no AWS account or region given; shown as <account> and <region>"
    account=${account:-<account>} region=${region:-<region>}
  fi
  registry=${registry:-$account.dkr.ecr.$region.amazonaws.com}
fi
[[ -n $registry ]] || usage_error "say where to push: --registry HOST[:PORT] or --ecr (see --help)"

cd "$REPO_ROOT"
head=$(git rev-parse HEAD)
version=$(crate_version)
changed=$(image_sources_changed)
if [[ -n $changed ]] && ((!allow_dirty)); then
  fail "$EXIT_REFUSED" "the files the image is built from have uncommitted changes, so it would match no commit (--allow-dirty to push anyway):
$changed"
fi
# The revision the image must name: HEAD, or with --allow-dirty, HEAD-dirty.
revision=$head
[[ -z $changed ]] || revision+=-dirty

# show COMMAND...: prints a command as it runs (or, with --dry-run, would run).
show() { say "+ $*"; }

# label NAME: the local image's org.opencontainers.image.NAME label.
label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$local_image"; }

# check_local_image: the image exists and is what the tags will say it is.
check_local_image() {
  "$DOCKER" image inspect "$local_image" >/dev/null 2>&1 ||
    fail "$EXIT_REFUSED" "no local image $local_image: build it first (docs/images.md), or name another with --local-image"
  local built_revision built_version created base_digest built_for
  built_revision=$(label revision) built_version=$(label version) created=$(label created) base_digest=$(label base.digest)
  [[ -n $built_revision && -n $built_version ]] ||
    fail "$EXIT_REFUSED" "$local_image was built without the build arguments (no revision or version label), so nothing says which commit it is: build it as docs/images.md shows"
  if [[ $built_revision == "$head-dirty" ]] && ((allow_dirty)); then
    revision=$built_revision
  elif [[ $built_revision == "$head-dirty" ]]; then
    fail "$EXIT_REFUSED" "$local_image was built from uncommitted changes to $head (--allow-dirty to push it anyway)"
  elif [[ $built_revision != "$revision" ]]; then
    fail "$EXIT_REFUSED" "$local_image was built from $built_revision, but HEAD is $revision: rebuild it, or check out the commit it was built from"
  fi
  [[ $built_version == "$version" ]] ||
    fail "$EXIT_REFUSED" "$local_image is version $built_version, but Cargo.toml says $version: rebuild it"
  [[ $created =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ &&
    $created != 1970-01-01T00:00:00Z ]] ||
    fail "$EXIT_REFUSED" "$local_image has no build time (org.opencontainers.image.created is '$created'): build it as docs/images.md shows"
  if [[ -z $base_digest ]] && ((!allow_unpinned_base)); then
    fail "$EXIT_REFUSED" "$local_image was built from a base image not pinned by digest (org.opencontainers.image.base.digest is empty): build it from the Dockerfile's pins, or --allow-unpinned-base"
  fi
  built_for=$("$DOCKER" image inspect -f '{{.Os}}/{{.Architecture}}{{with .Variant}}/{{.}}{{end}}' "$local_image")
  [[ $built_for == "$platform" ]] ||
    fail "$EXIT_REFUSED" "$local_image is built for $built_for, not $platform: it would not start there (exec format error); build it for $platform (docker build --platform $platform), or name another --platform"
}

# registry_lookup HOST REPOSITORY TAG: asks the registry what TAG holds, with
# the credentials docker has for HOST (credential helpers, credsStore, or
# config.json), and prints one line:
#   present <manifest digest> <config digest, or -> <media type>
#   absent|not-authorised|unreachable|failed <what the registry said>
# `docker manifest inspect` cannot tell these apart: it reports a 401 as
# "no such manifest". Loopback registries are reached as dockerd does:
# TLS without verification, then plain HTTP.
registry_lookup() {
  python3 - "$@" <<'PYTHON'
import base64, hashlib, ipaddress, json, os, re, ssl, subprocess, sys
import urllib.error, urllib.parse, urllib.request

host, repository, tag = sys.argv[1:4]
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def answer(state, *words):
    print(state, *[" ".join(str(word).split()) for word in words])
    sys.exit(0)


def credentials():
    """(user, secret) as docker would send them to host, or None."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    try:
        with open(os.path.join(directory, "config.json")) as file:
            config = json.load(file)
    except (OSError, ValueError):
        return None
    helper = config.get("credHelpers", {}).get(host) or config.get("credsStore")
    if helper:
        try:
            got = subprocess.run(["docker-credential-" + helper, "get"], input=host.encode(),
                                 capture_output=True, timeout=30)
            if got.returncode == 0:
                found = json.loads(got.stdout)
                return found["Username"], found["Secret"]
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            pass
    auths = config.get("auths", {})
    for key in (host, "https://" + host, "http://" + host):
        entry = auths.get(key) or {}
        if entry.get("identitytoken"):
            return "<token>", entry["identitytoken"]
        if entry.get("auth"):
            user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, secret
    return None


def get(url, headers, context, data=None):
    request = urllib.request.Request(url, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def registry_errors(body):
    try:
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in json.loads(body)["errors"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


def authorization(challenge, context):
    """The Authorization header that answers a 401's challenge, or why there is none."""
    scheme, _, parameters = challenge.partition(" ")
    found = credentials()
    if scheme.lower() == "basic":
        if found is None or found[0] == "<token>":
            answer("not-authorised", f"not logged in to {host} (docker login {host})")
        return "Basic " + base64.b64encode(f"{found[0]}:{found[1]}".encode()).decode()
    if scheme.lower() != "bearer":
        answer("failed", f"{host} asks for {scheme} authentication, which this check cannot do")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', parameters))
    query = {"service": fields.get("service", ""), "scope": f"repository:{repository}:pull"}
    headers, data = {}, None
    if found and found[0] == "<token>":
        data = urllib.parse.urlencode({**query, "grant_type": "refresh_token", "client_id": "api-push",
                                       "refresh_token": found[1]}).encode()
    elif found:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{found[0]}:{found[1]}".encode()).decode()
    url = fields.get("realm", "") + ("" if data else "?" + urllib.parse.urlencode(query))
    status, _, body = get(url, headers, context, data)
    if status in (401, 403):
        answer("not-authorised", f"{host}'s token service refused the credentials docker has: {registry_errors(body)}")
    if status != 200:
        answer("failed", f"{host}'s token service answered HTTP {status}")
    token = json.loads(body)
    return "Bearer " + (token.get("token") or token.get("access_token", ""))


def lookup(scheme, context):
    url = f"{scheme}://{host}/v2/{repository}/manifests/{tag}"
    status, headers, body = get(url, {"Accept": ACCEPT}, context)
    if status == 401:
        header = authorization(headers.get("WWW-Authenticate", ""), context)
        status, headers, body = get(url, {"Accept": ACCEPT, "Authorization": header}, context)
    if status == 200:
        manifest = json.loads(body)
        config = manifest.get("config", {}).get("digest", "-")
        media_type = manifest.get("mediaType") or headers.get("Content-Type", "-")
        answer("present", "sha256:" + hashlib.sha256(body).hexdigest(), config, media_type)
    if status == 404:
        answer("absent", registry_errors(body))
    if status in (401, 403):
        answer("not-authorised", f"HTTP {status} from {host}: {registry_errors(body)}")
    if status == 429 or status >= 500:
        answer("unreachable", f"HTTP {status} from {host}: {registry_errors(body)}")
    answer("failed", f"HTTP {status} from {host}: {registry_errors(body)}")


name = host.rsplit(":", 1)[0].strip("[]")
try:
    loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
except ValueError:
    loopback = False
try:
    if loopback:
        try:
            lookup("https", ssl._create_unverified_context())
        except (urllib.error.URLError, ConnectionError) as error:
            if not isinstance(getattr(error, "reason", error), (ssl.SSLError, ConnectionResetError)):
                raise
            lookup("http", None)
    context = ssl.create_default_context()
    ca = f"/etc/docker/certs.d/{host}/ca.crt"
    if os.path.exists(ca):
        context.load_verify_locations(ca)
    lookup("https", context)
except (urllib.error.URLError, OSError) as error:
    answer("unreachable", f"cannot reach {host}: {getattr(error, 'reason', error)}")
PYTHON
}

# push_failure OUTPUT: the exit code and meaning of a failed `docker push`.
push_failure() {
  case $(tr '[:upper:]' '[:lower:]' <<<"$1") in
    *"cannot be overwritten"* | *"tag invalid"* | *imagetagalreadyexists*)
      printf '%s\n' "$EXIT_TAG_HOLDS_OTHER the tag already exists and the repository refuses to overwrite it" ;;
    *unauthorized* | *"authentication required"* | *"no basic auth credentials"* | *denied*)
      printf '%s\n' "$EXIT_NOT_AUTHORISED not authorised to push there (docker login, or the role's permissions)" ;;
    *"name unknown"* | *"does not exist in the registry"*)
      printf '%s\n' "$EXIT_NO_REPOSITORY the repository $repository does not exist there: create it first (deploy/aws makes ECR's)" ;;
    *"dial tcp"* | *"no such host"* | *"connection refused"* | *"i/o timeout"* | *x509* | *tls* | *"connection reset"*)
      printf '%s\n' "$EXIT_UNREACHABLE cannot reach $registry" ;;
    *) printf '%s\n' "$EXIT_REFUSED the push failed" ;;
  esac
}

if ((dry_run)); then
  show "$DOCKER image inspect $local_image   # labels: revision $revision, version $version; platform $platform"
else
  check_local_image
fi
sha_tag=$target-${revision:0:7}
[[ $revision != *-dirty ]] || sha_tag+=-dirty
refs=("$registry/$repository:$target-$version" "$registry/$repository:$sha_tag")

if ((ecr)); then
  show "aws ecr get-login-password --region $region | $DOCKER login --username AWS --password-stdin $registry"
  if ((!dry_run)); then
    aws ecr get-login-password --region "$region" |
      "$DOCKER" login --username AWS --password-stdin "$registry" >&2 ||
      fail "$EXIT_NOT_AUTHORISED" "step 'login' failed: aws ecr get-login-password --region $region | docker login ... $registry"
  fi
fi

# Look every tag up before pushing any: what is there decides what to push.
image_id=""
((dry_run)) || image_id=$("$DOCKER" image inspect -f '{{.Id}}' "$local_image")
to_push=() results=()
for ref in "${refs[@]}"; do
  tag=${ref##*:}
  show "GET https://$registry/v2/$repository/manifests/$tag   # absent, or already this image"
  ((dry_run)) && { to_push+=("$ref"); continue; }
  read -r state detail < <(registry_lookup "$registry" "$repository" "$tag")
  case $state in
    absent) say "  $tag is not in the registry yet"; to_push+=("$ref") ;;
    present)
      read -r digest config _ <<<"$detail"
      if [[ $config == "$image_id" ]]; then
        say "  $tag already holds this image ($image_id): nothing to push"
        results+=("present $ref@$digest")
      elif ((force)); then
        say "  $tag holds another image ($ref@$digest, image $config); overwriting it with $image_id (--force)"
        to_push+=("$ref")
      else
        fail "$EXIT_TAG_HOLDS_OTHER" "$ref already holds another image: the registry has $digest (image $config), the local $local_image is $image_id; refusing to overwrite it (a new version, or --force where tags may change)"
      fi ;;
    not-authorised) fail "$EXIT_NOT_AUTHORISED" "not authorised to read $ref: $detail" ;;
    unreachable) fail "$EXIT_UNREACHABLE" "registry unreachable: $detail" ;;
    *) fail "$EXIT_REFUSED" "cannot tell what $ref holds: $detail" ;;
  esac
done

# ${a[@]+"${a[@]}"}: an empty array under `set -u` in bash before 4.4 (macOS's 3.2).
for ref in ${to_push[@]+"${to_push[@]}"}; do
  show "$DOCKER tag $local_image $ref"
  ((dry_run)) || "$DOCKER" tag "$local_image" "$ref"
done
for ref in ${to_push[@]+"${to_push[@]}"}; do
  show "$DOCKER push $ref"
  ((dry_run)) && continue
  if ! output=$("$DOCKER" push "$ref" 2>&1); then
    printf '%s\n' "$output" | tail -n 5 >&2
    read -r code meaning < <(push_failure "$output")
    fail "$code" "step 'push' failed: $ref: $meaning"
  fi
  # The last line of a push: "<tag>: digest: sha256:<64 hex> size: <bytes>".
  digest=$(printf '%s\n' "$output" | sed -nE 's/^.*: digest: (sha256:[0-9a-f]{64}) size: [0-9]+$/\1/p' | tail -n 1)
  [[ -n $digest ]] || fail "$EXIT_REFUSED" "pushed $ref, but the push reported no digest: $(printf '%s' "$output" | tail -n 1)"
  results+=("pushed $ref@$digest")
done

if ((dry_run)); then
  say "dry run: nothing was pushed; would push ${refs[*]}"
  exit 0
fi
# Both tags must name one manifest: the image the deployment will pull by digest.
digests=$(printf '%s\n' "${results[@]}" | sed 's/.*@//' | sort -u)
[[ $(wc -l <<<"$digests") == 1 ]] ||
  say "warning: the tags hold one image under different manifest digests (compressed differently): $(tr '\n' ' ' <<<"$digests")"
printf '%s\n' "${results[@]}"
[[ -z $digest_file ]] || printf '%s\n' "$(head -n 1 <<<"$digests")" >"$digest_file"
