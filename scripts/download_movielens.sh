#!/usr/bin/env bash
# Download a GroupLens MovieLens dataset for users with internet (not run by tests or CI).
# Usage: bash scripts/download_movielens.sh ml-100k|ml-1m [DEST_DIR=data]
# Read the GroupLens licence in the README inside the archive before using the data.
set -euo pipefail
name="${1:?usage: $0 ml-100k|ml-1m [dest]}"
dest="${2:-data}"
case "$name" in
  ml-100k|ml-1m) ;;
  *) echo "unknown dataset '$name' (ml-100k or ml-1m)" >&2; exit 2 ;;
esac
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fL --retry 3 -o "$tmp/$name.zip" "https://files.grouplens.org/datasets/movielens/$name.zip"
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$tmp/$name.zip" "$tmp"
rm -rf "${dest:?}/$name"
mv "$tmp/$name" "$dest/$name"
echo "$name ready in $dest/$name  (llmrec train recipes/train/${name/-/}.yaml data.path=$dest/$name)"
