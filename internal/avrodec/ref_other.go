//go:build !amd64

package avrodec

import "github.com/pipelined/pipelined/agg"

// decodeRefBatch decodes none: without the assembly, DecodeBatch decodes each payload with
// Decode.
func decodeRefBatch(bs [][]byte, rs *agg.Reading, ok *bool, p *refPlan, lenMin int, lenSpan uint) int {
	return 0
}
