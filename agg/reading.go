// Package agg aggregates decoded sensor readings into per-device tumbling windows.
//
// It is pure: no Pulsar, ClickHouse, configuration or metrics imports. It takes decoded
// values and emits closed windows as columns.
package agg

// MaxMeasures is the largest number of measures one Reading carries.
const MaxMeasures = 8

// Reading is one decoded sensor message: the values the aggregation needs and nothing else.
// Decoders fill it in place, so it holds no pointers and costs no allocation.
type Reading struct {
	Key    int64                // device id (the configured key field)
	TimeMs int64                // event time, epoch milliseconds
	Status int32                // the configured status field
	Values [MaxMeasures]float64 // the configured measures, in configured order
}
