// Package pulsarpb holds the Pulsar binary protocol messages generated from Apache Pulsar's
// PulsarApi.proto, renamed to proto package "pulsarpb.proto" so that it can be linked next
// to pulsar-client-go's own copy. It is shared by the local test broker (internal/pulsarlocal)
// and the schema registry client (internal/registry).
package pulsarpb

//go:generate ./gen.sh
