#!/bin/sh
# gen.sh regenerates pulsarpb_api.pb.go from the PulsarApi.proto shipped in the
# pulsar-client-go module. The proto package and file name are renamed so that the
# generated descriptors do not collide with the client's own "PulsarApi.proto" /
# "pulsar.proto" registration when both are linked into one binary.
# Needs protoc (Debian protobuf-compiler) and protoc-gen-go v1.36.5 on PATH.
set -eu
cd "$(dirname "$0")"
dir=$(go list -m -f '{{.Dir}}' github.com/apache/pulsar-client-go)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e 's/^package pulsar\.proto;/package pulsarpb.proto;/' \
    -e 's|^option go_package = .*|option go_package = "github.com/pipelined/pipelined/internal/pulsarpb";|' \
    "$dir/pulsar/internal/pulsar_proto/PulsarApi.proto" > "$tmp/pulsarpb_api.proto"
protoc -I "$tmp" --go_out=. --go_opt=paths=source_relative "$tmp/pulsarpb_api.proto"
gofmt -w pulsarpb_api.pb.go
