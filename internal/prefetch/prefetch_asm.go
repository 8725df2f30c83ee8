//go:build amd64 || arm64

package prefetch

// lines prefetches the line of each of the n addresses at addrs; n > 0.
//
//go:noescape
func lines(addrs *uintptr, n int)
