package agg

import "golang.org/x/sys/cpu"

// hasAVX says whether foldMeasures may use AVX: the processor has it, and the operating
// system saves its registers.
var hasAVX = cpu.X86.HasAVX

// foldMeasures is foldMeasuresGo, in AVX where the processor has it (fold_amd64.s), else a
// jump to foldMeasuresGo.
//
//go:noescape
func foldMeasures(p *uint64, vs *[MaxMeasures]float64, m int)
