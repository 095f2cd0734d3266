#!/usr/bin/env bash
# Installs ONNX Runtime 1.30.0 (linux-x64, CPU) into third_party/onnxruntime from
# the npm package onnxruntime-node@1.30.0, which ships the shared library.
# Idempotent: an existing, verified library is left alone. Prints the path.
# When ONNXRUNTIME_LIB is set, that library is used and nothing is installed.
set -euo pipefail

ORT_VERSION=1.30.0
LIB_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/third_party/onnxruntime"
LIB="$DEST/libonnxruntime.so.$ORT_VERSION"

if [[ -n "${ONNXRUNTIME_LIB:-}" ]]; then
	if [[ ! -f "$ONNXRUNTIME_LIB" ]]; then
		echo "install-ort: ONNXRUNTIME_LIB=$ONNXRUNTIME_LIB does not exist" >&2
		exit 1
	fi
	echo "$ONNXRUNTIME_LIB"
	exit 0
fi

verify() { [[ -f "$1" ]] && echo "$LIB_SHA256  $1" | sha256sum --check --status; }

if verify "$LIB"; then
	echo "$LIB"
	exit 0
fi

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
	echo "install-ort: only linux-x64 is installed automatically; set ONNXRUNTIME_LIB to your onnxruntime shared library" >&2
	exit 1
fi
command -v npm >/dev/null || { echo "install-ort: npm is needed to fetch onnxruntime-node@$ORT_VERSION (or set ONNXRUNTIME_LIB)" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
tar -xzf "$TMP/onnxruntime-node-$ORT_VERSION.tgz" -C "$TMP" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
mkdir -p "$DEST"
cp "$TMP/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$LIB.tmp"
if ! verify "$LIB.tmp"; then
	rm -f "$LIB.tmp"
	echo "install-ort: sha256 of the extracted library does not match $LIB_SHA256" >&2
	exit 1
fi
mv "$LIB.tmp" "$LIB"
echo "$LIB"
