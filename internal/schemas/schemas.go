// Package schemas holds the Avro schemas pipelined ships: the reference's SensorData and a padded
// variant for benchmarking messages of the size the reference's write-up quotes.
package schemas

import _ "embed" // for go:embed

// SensorData is the reference load generator's schema, byte for byte: eight fields whose binary
// datum is about 41 bytes.
//
//go:embed SensorData.avsc
var SensorData string

// SensorDataPadded is SensorData with the same fields first, followed by string fields
// (deviceType, site, customer, firmware, location, serialNumber) that bring a typical binary datum
// to about 300 bytes, the message size the reference's write-up speaks of.
//
//go:embed SensorDataPadded.avsc
var SensorDataPadded string
