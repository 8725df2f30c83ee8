package main
import (
 _ "github.com/apache/pulsar-client-go/pulsar"
 _ "github.com/hamba/avro/v2"
 _ "github.com/ClickHouse/ch-go"
 _ "github.com/puzpuzpuz/xsync/v3"
 _ "github.com/knadh/koanf/v2"
 _ "github.com/knadh/koanf/parsers/yaml"
 _ "github.com/knadh/koanf/providers/file"
 _ "github.com/knadh/koanf/providers/env"
 _ "github.com/VictoriaMetrics/metrics"
 _ "github.com/chdb-io/chdb-go/chdb"
)
func main(){}
