#!/usr/bin/env bash
# Regenerates the Swift code of Protos/*.proto into Sources/LedgerRPC/Generated (committed; CI never runs this).
#
# Builds the two protoc plugins from the package's own dependencies (swift-protobuf, grpc-swift-protobuf),
# runs protoc, and marks the generated files so `swift format lint` skips them. Idempotent: running it twice
# gives the same files. Needs protoc (Debian: `apt-get install -y protobuf-compiler`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
    echo "error: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2
    exit 1
fi

echo "building protoc plugins..." >&2
swift build --product protoc-gen-swift >&2
swift build --product protoc-gen-grpc-swift-2 >&2
bin="$(swift build --show-bin-path)"
for plugin in protoc-gen-swift protoc-gen-grpc-swift-2; do
    if [[ ! -x "$bin/$plugin" ]]; then
        echo "error: $bin/$plugin was not built" >&2
        exit 1
    fi
done

out="Sources/LedgerRPC/Generated"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

protos=(Protos/*.proto)
echo "running $(protoc --version) on ${protos[*]}..." >&2
protoc \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
    --swift_out="$staging" --swift_opt=Visibility=Public \
    --grpc-swift_out="$staging" --grpc-swift_opt=Visibility=Public \
    -I Protos "${protos[@]}"

# Generated code does not follow our formatting rules. Both generators (swift-protobuf 1.39, grpc-swift-protobuf
# 2.4) already write `// swift-format-ignore-file` into their header; add it only where a generator did not.
for file in "$staging"/*.swift; do
    if ! grep -q '^// swift-format-ignore-file$' "$file"; then
        {
            echo "// swift-format-ignore-file"
            cat "$file"
        } >"$file.marked"
        mv "$file.marked" "$file"
    fi
done

# Replace the previous output as a whole, so a removed .proto leaves no stale file behind.
mkdir -p "$out"
rm -f "$out"/*.swift
cp "$staging"/*.swift "$out"/
echo "generated: $(cd "$out" && ls *.swift | tr '\n' ' ')" >&2
