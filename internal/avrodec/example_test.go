package avrodec_test

import (
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/avrodec"
	"github.com/pipelined/pipelined/internal/schemas"
)

func Example() {
	schema := avro.MustParse(schemas.SensorData)
	d, err := avrodec.New(schema, avrodec.Fields{
		Key:      "sensorId",
		Time:     "timestamp",
		Status:   "status",
		Measures: []string{"temperature", "humidity", "pressure", "batteryLevel"},
	}, 4096)
	if err != nil {
		panic(err)
	}
	payload, _ := avro.Marshal(schema, map[string]any{
		"sensorId": 7, "sensorType": 1, "temperature": 21.5, "humidity": 40.0,
		"pressure": 1013.25, "batteryLevel": 99.0, "status": 1, "timestamp": int64(1764000000000),
	})

	var r agg.Reading
	if err := d.Decode(payload, &r); err != nil {
		panic(err)
	}
	fmt.Println(r.Key, r.TimeMs, r.Status, r.Values[:4])

	err = d.Decode(payload[:20], &r)
	var de *avrodec.Error
	if errors.As(err, &de) {
		fmt.Println(de.Reason) // a metric label
	}
	fmt.Println(err)
	// Output:
	// 7 1764000000000 1 [21.5 40 1013.25 99]
	// truncated
	// avro decode: truncated in field "pressure" at offset 18 of 20 bytes
}
