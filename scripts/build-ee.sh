#!/usr/bin/env bash
# The execution environment (execution-environment.yml, ansible-builder 3.2.0).
#   scripts/build-ee.sh create   the collection tarball and the build context
#                                (.build/ee/context/Containerfile), no image
#   scripts/build-ee.sh build    create, then the image with docker
#                                (kibamail/email-platform-ee:<version>; needs
#                                registry.access.redhat.com and Ansible Galaxy)
#   scripts/build-ee.sh local    the same image on this machine, which reaches
#                                no registry and no Galaxy: base local/ee-base:12
#                                (FROM local/debian:12, scripts/build-images.sh)
#                                with a dnf-style shim over apt-get, and the
#                                collection dependencies packed from the venv;
#                                then runs the plan playbook inside the image.
#                                The image's pip still needs PyPI (wheels of
#                                ansible-core and requirements.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-create}
out="$root/.build/ee"
version=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$root/galaxy.yml")
tag="kibamail/email-platform-ee:$version"

rm -rf "$out"; mkdir -p "$out/dist"
ansible-galaxy collection build --force --output-path "$out/dist" "$root" >/dev/null
cp "$out"/dist/kibamail-email_platform-*.tar.gz "$out/kibamail-email_platform.tar.gz"
ansible-builder create -f "$root/execution-environment.yml" -c "$out/context" --output-filename Containerfile >/dev/null
echo "build-ee: context in $out/context"

case "$mode" in
  create) exit 0 ;;
  build)
    ansible-builder build -f "$root/execution-environment.yml" -c "$out/context" --container-runtime docker -t "$tag"
    ;;
  local)
    "$root/scripts/build-images.sh" >/dev/null
    docker build -q -t local/ee-base:12 "$root/images/ee-base" >/dev/null
    # The collection's dependencies, as Galaxy would have served them: the
    # installed copies the venv holds (MANIFEST.json and FILES.json included).
    site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    python - "$root/galaxy.yml" "$site" "$out/context/_build" <<'PY'
import subprocess, sys, yaml
galaxy, site, build = sys.argv[1:]
reqs = yaml.safe_load(open(build + "/requirements.yml"))
for fqcn in yaml.safe_load(open(galaxy))["dependencies"]:
    ns, name = fqcn.split(".")
    tarball = "collection/%s-%s.tar.gz" % (ns, name)
    subprocess.run(["tar", "-C", "%s/ansible_collections/%s/%s" % (site, ns, name), "--exclude=__pycache__",
                    "-czf", "%s/%s" % (build, tarball), "."], check=True)
    reqs["collections"].insert(0, {"name": tarball, "type": "file"})
yaml.safe_dump(reqs, open(build + "/requirements.yml", "w"))
PY
    start=$(date +%s)
    docker build -t "$tag" -f "$out/context/Containerfile" \
      --build-arg EE_BASE_IMAGE=local/ee-base:12 --build-arg PYCMD=/opt/ee-python/bin/python3 --build-arg PYPKG=python3 \
      --build-arg PKGMGR=/usr/local/bin/dnf-apt "$out/context"
    echo "build-ee: image $tag built in $(( $(date +%s) - start ))s"
    start=$(date +%s)
    docker run --rm "$tag" ansible-playbook kibamail.email_platform.plan \
      -i /usr/share/ansible/collections/ansible_collections/kibamail/email_platform/inventories/production
    echo "build-ee: plan ran in the image in $(( $(date +%s) - start ))s"
    ;;
  *) echo "usage: $0 create|build|local" >&2; exit 2 ;;
esac
