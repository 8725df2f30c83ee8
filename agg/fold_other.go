//go:build !amd64

package agg

// hasAVX is false where there is no assembly: foldMeasures is foldMeasuresGo.
var hasAVX bool

// foldMeasures is foldMeasuresGo where there is no assembly for it.
func foldMeasures(p *uint64, vs *[MaxMeasures]float64, m int) { foldMeasuresGo(p, vs, m) }
