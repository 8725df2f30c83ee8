// Package loadgen is the reference load generator: sensor readings with the reference's
// distributions, encoded as Avro SensorData (or SensorDataPadded) and sent to Pulsar.
//
// Generator makes the messages and is pure; Producer sends them.
package loadgen

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/pipelined/pipelined/internal/schemas"
)

// DefaultDevices is the reference's device count.
const DefaultDevices = 100_000

// Config configures a Generator.
type Config struct {
	Devices int    // number of devices, ids 0..Devices-1; default DefaultDevices
	Seed    uint64 // random seed: the same seed gives the same messages; default 0
	Padded  bool   // encode SensorDataPadded (about 300 bytes) instead of SensorData (about 41); default false
}

// Sample is one generated reading: the fields of SensorData. The padded variant's strings
// depend only on SensorID; see PaddingFor.
type Sample struct {
	SensorID     int32   `avro:"sensorId"`
	SensorType   int32   `avro:"sensorType"`   // 1..8, uniform
	Temperature  float64 `avro:"temperature"`  // 10 + U*30
	Humidity     float64 `avro:"humidity"`     // 20 + U*60
	Pressure     float64 `avro:"pressure"`     // 980 + U*50
	BatteryLevel float64 `avro:"batteryLevel"` // 20 + U*80
	Status       int32   `avro:"status"`       // 1 with 85%, 2, 3, 4 with 5% each
	Timestamp    int64   `avro:"timestamp"`    // event time, epoch milliseconds
}

// Generator makes sensor readings with the reference's distributions: each message picks a
// device uniformly at random. It is not safe for concurrent use; make one per goroutine.
type Generator struct {
	rng     *rand.Rand
	devices int
	padded  bool
	last    Sample
	pads    [][]byte // encoded padding strings by device, made on first use
}

// New returns a Generator for cfg.
func New(cfg Config) *Generator {
	if cfg.Devices <= 0 {
		cfg.Devices = DefaultDevices
	}
	g := &Generator{
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x5e7507da7a)),
		devices: cfg.Devices,
		padded:  cfg.Padded,
	}
	if cfg.Padded {
		g.pads = make([][]byte, cfg.Devices)
	}
	return g
}

// Schema returns the Avro schema of the messages: schemas.SensorData or schemas.SensorDataPadded.
func (g *Generator) Schema() string {
	if g.padded {
		return schemas.SensorDataPadded
	}
	return schemas.SensorData
}

// Next generates a reading stamped nowMs and appends its Avro binary datum to dst. It returns
// the device id and the extended dst. It allocates nothing once dst has room, except, for the
// padded variant, the padding strings of a device the first time it is drawn (about 260 bytes,
// kept for the Generator's life).
func (g *Generator) Next(nowMs int64, dst []byte) (sensorID int32, payload []byte) {
	r := g.rng
	s := Sample{
		SensorID:     int32(r.IntN(g.devices)),
		SensorType:   1 + int32(r.IntN(8)),
		Temperature:  10 + r.Float64()*30,
		Humidity:     20 + r.Float64()*60,
		Pressure:     980 + r.Float64()*50,
		BatteryLevel: 20 + r.Float64()*80,
		Timestamp:    nowMs,
	}
	switch p := r.IntN(100); {
	case p < 85:
		s.Status = 1
	case p < 90:
		s.Status = 2
	case p < 95:
		s.Status = 3
	default:
		s.Status = 4
	}
	g.last = s

	dst = appendLong(dst, int64(s.SensorID))
	dst = appendLong(dst, int64(s.SensorType))
	dst = appendDouble(dst, s.Temperature)
	dst = appendDouble(dst, s.Humidity)
	dst = appendDouble(dst, s.Pressure)
	dst = appendDouble(dst, s.BatteryLevel)
	dst = appendLong(dst, int64(s.Status))
	dst = appendLong(dst, s.Timestamp)
	if g.padded {
		p := g.pads[s.SensorID]
		if p == nil {
			p = encodePadding(nil, s.SensorID)
			g.pads[s.SensorID] = p
		}
		dst = append(dst, p...)
	}
	return s.SensorID, dst
}

// encodePadding appends the Avro encoding of device id's padding strings to b.
func encodePadding(b []byte, id int32) []byte {
	h := mix(uint64(id))
	var scratch [128]byte
	for f := range paddingFields {
		str := appendPadding(scratch[:0], f, id, h)
		b = appendLong(b, int64(len(str)))
		b = append(b, str...)
	}
	return b
}

// Last returns the reading the last call to Next generated.
func (g *Generator) Last() Sample { return g.last }

// appendLong appends v as an Avro int or long: a zig-zag varint.
func appendLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1^v>>63))
}

// appendDouble appends v as an Avro double: 8 bytes, little endian.
func appendDouble(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// Padding holds the strings SensorDataPadded adds to SensorData.
type Padding struct {
	DeviceType   string `avro:"deviceType"`
	Site         string `avro:"site"`
	Customer     string `avro:"customer"`
	Firmware     string `avro:"firmware"`
	Location     string `avro:"location"`
	SerialNumber string `avro:"serialNumber"`
}

// paddingFields is the number of Padding fields, in schema order.
const paddingFields = 6

// PaddingFor returns the padding strings of device id: they depend on nothing else.
func PaddingFor(sensorID int32) Padding {
	h := mix(uint64(sensorID))
	var f [paddingFields]string
	for i := range f {
		f[i] = string(appendPadding(nil, i, sensorID, h))
	}
	return Padding{f[0], f[1], f[2], f[3], f[4], f[5]}
}

var (
	deviceModels = [...]string{
		"environmental-sensor/model-THP-3100", "environmental-sensor/model-TH-2200",
		"industrial-pressure-transmitter/PT-9", "motion-detector/pir-MD-450-wide",
		"ambient-light-sensor/ALS-77-outdoor", "air-quality-monitor/co2-AQ-8800",
		"acoustic-noise-logger/NL-12-class1", "multisensor-gateway/MSG-5000-pro",
	}
	regions   = [...]string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1", "sa-east-1"}
	companies = [...]string{
		"acme-industrial-iot-operations", "globex-smart-buildings-division", "initech-facility-management",
		"umbrella-cold-chain-logistics", "stark-manufacturing-plants-eu", "wayne-property-services-group",
	}
)

// appendPadding appends padding field f of device id, h being mix(id).
func appendPadding(b []byte, f int, id int32, h uint64) []byte {
	switch f {
	case 0: // deviceType
		return append(b, deviceModels[h%uint64(len(deviceModels))]...)
	case 1: // site
		b = append(b, regions[(h>>8)%uint64(len(regions))]...)
		b = append(b, "/site-"...)
		b = appendPadded(b, int64(id)/1000, 4)
		b = append(b, "/building-"...)
		b = appendPadded(b, int64(h>>16%20), 2)
		b = append(b, "/floor-"...)
		b = appendPadded(b, int64(h>>24%12), 2)
		b = append(b, "/zone-"...)
		b = append(b, byte('A'+h>>32%8))
		b = append(b, "/rack-"...)
		return appendPadded(b, int64(h>>40%50), 2)
	case 2: // customer
		b = append(b, "customer-"...)
		b = appendPadded(b, int64(h>>12%100000), 5)
		b = append(b, '/')
		b = append(b, companies[(h>>20)%uint64(len(companies))]...)
		b = append(b, "/contract-"...)
		return appendPadded(b, int64(h>>28%10000), 4)
	case 3: // firmware
		b = append(b, "fw-"...)
		b = strconv.AppendInt(b, int64(1+h%4), 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(h>>4%20), 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(h>>12%200), 10)
		b = append(b, "-build-2026"...)
		b = appendPadded(b, int64(1+h>>20%12), 2)
		b = appendPadded(b, int64(1+h>>28%28), 2)
		return append(b, "-release"...)
	case 4: // location
		b = append(b, "lat="...)
		b = strconv.AppendFloat(b, float64(h%180_000_000)/1e6-90, 'f', 6, 64)
		b = append(b, ";lon="...)
		b = strconv.AppendFloat(b, float64(h>>28%360_000_000)/1e6-180, 'f', 6, 64)
		b = append(b, ";alt="...)
		b = strconv.AppendFloat(b, float64(h>>56)/2, 'f', 1, 64)
		return append(b, "m;indoor"...)
	default: // serialNumber
		b = append(b, "SN-"...)
		b = appendPadded(b, int64(id), 7)
		b = append(b, '-')
		model := deviceModels[h%uint64(len(deviceModels))]
		b = append(b, model[len(model)-7:]...)
		b = append(b, "-2026"...)
		b = appendPadded(b, int64(h>>36%10000), 4)
		b = append(b, '-')
		return appendPadded(b, int64(h>>48%1_000_000), 6)
	}
}

// appendPadded appends v (not negative) in decimal, zero-padded to width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	for d := int64(10); width > 1; d, width = d*10, width-1 {
		if v < d {
			for ; width > 1; width-- {
				b = append(b, '0')
			}
			break
		}
	}
	return strconv.AppendInt(b, v, 10)
}

// mix is splitmix64's finalizer: a fixed per-device hash for the padding strings.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
