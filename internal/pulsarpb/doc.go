// Package pb holds the Pulsar binary protocol messages generated from Apache Pulsar's
// PulsarApi.proto, renamed to proto package "pulsarlocal.proto" so that it can be linked
// next to pulsar-client-go's own copy.
package pb

//go:generate ./gen.sh
