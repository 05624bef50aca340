#!/usr/bin/env python3
"""registry_api.py COMMAND HOST REPOSITORY ARGS...: the registry API, with the
credentials docker has for HOST (credential helpers, credsStore, or
config.json). Prints one line, "<state> <detail>", and exits 0:
  lookup TAG            present <manifest digest> <config digest, or -> <media type> <size>
  put-manifest REF MEDIA_TYPE FILE      put <digest>     (FILE's exact bytes, under REF)
  attach SUBJECT FILE ARTIFACT_TYPE CREATED DESCRIPTION
                        attached <referrer digest> <how: referrers-api or tag:sha256-...>
  any command: absent|not-authorised|unreachable|failed <what the registry said>
`docker manifest inspect` cannot tell these apart: it reports a 401 as
"no such manifest". Loopback registries are reached as dockerd does:
TLS without verification, then plain HTTP.

attach pushes FILE as an OCI artifact whose subject is the manifest
SUBJECT (a digest): the referrer of the OCI 1.1 distribution spec. A
registry with the referrers API (ECR) says so with an OCI-Subject header;
for one without (CNCF distribution 2.8), the spec's fallback: the
referrer is added to the index tagged sha256-<subject's hex digest>.

scripts/push.sh runs it; tests/supply_chain/registry_redirects.py tests what no
real registry here does.
"""
import base64, hashlib, ipaddress, json, os, re, ssl, subprocess, sys
import urllib.error, urllib.parse, urllib.request

command, host, repository, *args = sys.argv[1:]
# Docker Hub: its API is on registry-1.docker.io (PUSH_DOCKER_HUB_API moves
# it, for tests), and docker keeps its credentials under its old index URL.
HUB = host in ("docker.io", "index.docker.io", "registry-1.docker.io")
api_host = (os.environ.get("PUSH_DOCKER_HUB_API") or "registry-1.docker.io") if HUB else host
cred_key = "https://index.docker.io/v1/" if HUB else host
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
])
# OCI image spec 1.1: the empty descriptor, an artifact's config.
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}


def answer(state, *words):
    print(state, *[" ".join(str(word).split()) for word in words])
    sys.exit(0)


def parse(body, what):
    """BODY as a JSON object, or the answer that it is not one."""
    try:
        found = json.loads(body)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        answer("failed", f"{what} from {api_host} is not a JSON object: {body[:80].decode(errors='replace')!r}")
    return found


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def credentials():
    """(user, secret) as docker would send them to host, or None."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    try:
        with open(os.path.join(directory, "config.json")) as file:
            config = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helper = (config.get("credHelpers") or {}).get(cred_key) or config.get("credsStore")
    if helper:
        try:
            got = subprocess.run(["docker-credential-" + helper, "get"], input=cred_key.encode(),
                                 capture_output=True, timeout=30)
            if got.returncode == 0:
                found = json.loads(got.stdout)
                return found["Username"], found["Secret"]
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            pass
    auths = config.get("auths") or {}
    for key in (cred_key,) if HUB else (host, "https://" + host, "http://" + host):
        entry = auths.get(key) or {}
        try:
            if entry.get("identitytoken"):
                return "<token>", entry["identitytoken"]
            if entry.get("auth"):
                user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, secret
        except (AttributeError, ValueError):
            answer("failed", f"docker's credentials for {cred_key} in {directory}/config.json are unreadable")
    return None


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects come back as answers. Registries redirect blob requests to
    their storage (ECR and ghcr.io to S3, Docker Hub to a CDN), and urllib
    would follow with our Authorization header (the token, or with Basic
    the password, handed to another host) and turn a HEAD into a GET."""

    def redirect_request(self, *_):
        return None


def send(opener, method, url, headers, data=None):
    request = urllib.request.Request(url, headers=headers, data=data, method=method)
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def registry_errors(body):
    try:
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in json.loads(body)["errors"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return body[:200].decode(errors="replace")


class Registry:
    """The repository's API: answers 401s with docker's credentials, once."""

    def __init__(self, scheme, context, actions):
        self.base, self.actions, self.auth = f"{scheme}://{api_host}", actions, None
        self.opener = urllib.request.build_opener(NoRedirects, urllib.request.HTTPSHandler(context=context))

    def authorization(self, challenge):
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
        query = {"service": fields.get("service", ""), "scope": f"repository:{repository}:{self.actions}"}
        headers, data = {}, None
        if found and found[0] == "<token>":
            data = urllib.parse.urlencode({**query, "grant_type": "refresh_token", "client_id": "api-push",
                                           "refresh_token": found[1]}).encode()
        elif found:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{found[0]}:{found[1]}".encode()).decode()
        url = fields.get("realm", "") + ("" if data else "?" + urllib.parse.urlencode(query))
        status, _, body = send(self.opener, "POST" if data else "GET", url, headers, data)
        if status in (401, 403):
            answer("not-authorised", f"{host}'s token service refused the credentials docker has: {registry_errors(body)}")
        if status != 200:
            answer("failed", f"{host}'s token service answered HTTP {status}")
        token = parse(body, "the token service's answer")
        return "Bearer " + str(token.get("token") or token.get("access_token", ""))

    def request(self, method, path, headers=None, data=None):
        url = path if "://" in path else self.base + path
        headers = dict(headers or {})
        # The registry's credentials go to the registry only: an upload's
        # Location may be another host (the distribution spec allows it).
        same_origin = urllib.parse.urlsplit(url)[:2] == urllib.parse.urlsplit(self.base)[:2]
        if self.auth and same_origin:
            headers["Authorization"] = self.auth
        status, answered, body = send(self.opener, method, url, headers, data)
        if status == 401 and not self.auth and same_origin:
            self.auth = headers["Authorization"] = self.authorization(answered.get("WWW-Authenticate", ""))
            status, answered, body = send(self.opener, method, url, headers, data)
        if status in (401, 403):
            answer("not-authorised", f"HTTP {status} from {host}: {registry_errors(body)}")
        if status == 429 or status >= 500:
            answer("unreachable", f"HTTP {status} from {host}: {registry_errors(body)}")
        return status, answered, body

    def manifest(self, reference):
        """(status, digest, media type, body) of the manifest REFERENCE names."""
        status, headers, body = self.request("GET", f"/v2/{repository}/manifests/{reference}", {"Accept": ACCEPT})
        if status != 200:
            return status, None, None, body
        media_type = parse(body, f"the manifest {reference}").get("mediaType") or headers.get("Content-Type", "-")
        return status, sha256(body), media_type, body

    def put_manifest(self, reference, media_type, body):
        status, headers, answered = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                                                 {"Content-Type": media_type}, body)
        if status not in (200, 201):
            answer("failed", f"PUT manifest {reference}: HTTP {status}: {registry_errors(answered)}")
        return headers

    def blob(self, data, media_type):
        """Uploads DATA (unless the registry has it), returns its descriptor."""
        digest = sha256(data)
        status, _, _ = self.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        # Only a 200 says the registry has it (the spec); a redirect may
        # be a login page or a moved repository: upload (a few bytes, and
        # uploading a blob the registry has changes nothing).
        if status != 200:
            status, headers, body = self.request("POST", f"/v2/{repository}/blobs/uploads/", {}, b"")
            if status != 202:
                answer("failed", f"blob upload: HTTP {status}: {registry_errors(body)}")
            location = urllib.parse.urljoin(self.base + "/", headers["Location"])
            location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
            status, _, body = self.request("PUT", location, {"Content-Type": "application/octet-stream"}, data)
            if status != 201:
                answer("failed", f"blob upload: HTTP {status}: {registry_errors(body)}")
        return {"mediaType": media_type, "digest": digest, "size": len(data)}


def error_codes(body):
    try:
        return {error.get("code") for error in json.loads(body)["errors"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def lookup(api, tag):
    status, digest, media_type, body = api.manifest(tag)
    if status == 200:
        config = parse(body, f"the manifest {tag}").get("config") or {}
        answer("present", digest, config.get("digest", "-") if isinstance(config, dict) else "-", media_type, len(body))
    if status == 404 and "NAME_UNKNOWN" in error_codes(body):
        # The repository itself is missing (ECR); a registry that creates
        # repositories on push (distribution) answers MANIFEST_UNKNOWN.
        answer("no-repository", registry_errors(body))
    if status == 404:
        answer("absent", registry_errors(body))
    answer("failed", f"HTTP {status} from {host}: {registry_errors(body)}")


def attach(api, subject, path, artifact_type, created, description):
    status, digest, media_type, body = api.manifest(subject)
    if status != 200:
        answer("absent" if status == 404 else "failed", f"the subject {subject}: HTTP {status}: {registry_errors(body)}")
    with open(path, "rb") as file:
        layer = api.blob(file.read(), artifact_type)
    api.blob(b"{}", EMPTY["mediaType"])
    layer["annotations"] = {"org.opencontainers.image.title": os.path.basename(path)}
    annotations = {"org.opencontainers.image.created": created, "org.opencontainers.image.description": description}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type, "config": EMPTY,
        "layers": [layer], "subject": {"mediaType": media_type, "digest": digest, "size": len(body)},
        "annotations": annotations,
    }, sort_keys=True, separators=(",", ":")).encode()
    referrer = sha256(manifest)
    headers = api.put_manifest(referrer, OCI_MANIFEST, manifest)
    if headers.get("OCI-Subject") == digest:
        answer("attached", referrer, "referrers-api")
    # No referrers API: the fallback tag's index lists the referrers.
    tag = digest.replace(":", "-")
    status, _, index_type, body = api.manifest(tag)
    if status == 404:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    elif status == 200 and index_type == OCI_INDEX:
        index = parse(body, f"the referrers index {tag}")
        if not isinstance(index.get("manifests"), list):
            answer("failed", f"the referrers tag {tag} holds an index without a manifests list")
    else:
        answer("failed", f"the referrers tag {tag} holds {index_type or f'HTTP {status}'}, not an OCI index")
    if not any(entry.get("digest") == referrer for entry in index["manifests"]):
        index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": referrer, "size": len(manifest),
                                   "artifactType": artifact_type, "annotations": annotations})
        api.put_manifest(tag, OCI_INDEX, json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
    answer("attached", referrer, "tag:" + tag)


def run(scheme, context):
    api = Registry(scheme, context, "pull" if command == "lookup" else "pull,push")
    if command == "lookup":
        lookup(api, *args)
    elif command == "put-manifest":
        reference, media_type, path = args
        with open(path, "rb") as file:
            body = file.read()
        api.put_manifest(reference, media_type, body)
        answer("put", sha256(body))
    elif command == "attach":
        attach(api, *args)
    answer("failed", f"unknown command {command}")


name = api_host.rsplit(":", 1)[0].strip("[]")
try:
    loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
except ValueError:
    loopback = False
try:
    if loopback:
        try:
            run("https", ssl._create_unverified_context())
        except (urllib.error.URLError, ConnectionError) as error:
            if not isinstance(getattr(error, "reason", error), (ssl.SSLError, ConnectionResetError)):
                raise
            run("http", None)
    context = ssl.create_default_context()
    ca = f"/etc/docker/certs.d/{api_host}/ca.crt"
    if os.path.exists(ca):
        context.load_verify_locations(ca)
    run("https", context)
except (urllib.error.URLError, OSError) as error:
    answer("unreachable", f"cannot reach {api_host}: {getattr(error, 'reason', error)}")
