// Package prefetch asks the processor to start loading cache lines that code is about to read.
//
// The hot path reads, for every message of a batch, memory that is not in the cache: the
// message objects and IDs the client wrote on another core, and the window index slots and
// rows of their devices. Reading a batch's addresses ahead with ordinary loads overlaps the
// misses only as far as the out-of-order window reaches, since a load that misses cannot
// retire, and a pass that does more per message than the load (an interface call, a hash)
// keeps fewer of them in flight. A prefetch instruction retires at once, so a loop of them
// asks for every line of the batch before the pass that reads them.
//
// On amd64 the lines go to the second-level cache, not the first (PREFETCHT1, not PREFETCHT0).
// A batch asks for dozens of lines at once. On Zen 4 the hot path with the rows of 100,000
// devices in memory took about half the time with PREFETCHT1 (BenchmarkHotPath, 0.54-0.56 in
// serial pairs), and a drain of the backlog about 7% less CPU; on Zen 5 the two were within a
// few per cent, and on an Intel Xeon (Ice Lake server) PREFETCHT0 took 1.06 of PREFETCHT1's
// time, with drains even (bench/RESULTS.md, phases 26, 31 and 33), so no processor asks for the
// other. Presumably the first level has room to track fewer misses at once than a batch asks
// for, and a PREFETCHT0 beyond that waits for room with the work behind it, where the second
// level tracks more; these VMs have no counters to show it. A line prefetched so costs the code
// that reads it a second-level hit, a few nanoseconds. On arm64 the lines still go to the first
// level: nothing here measured the other there.
//
// Lines is a hint: it never faults (an address past an object's end, or no valid address at
// all, is ignored by the processor), reads and changes nothing the program can see, and on an
// architecture without an implementation here it does nothing. Addresses are uintptrs, which
// the garbage collector does not follow: one computed past an object's end would be a bad
// pointer to it, and what is prefetched is kept alive by its owner anyway.
package prefetch

import "unsafe"

// Lines starts loading, into the cache (on amd64 its second level and beyond), the line that
// holds each address of addrs. It costs one call for the lot, not one per address.
func Lines(addrs []uintptr) {
	if len(addrs) > 0 {
		lines(unsafe.SliceData(addrs), len(addrs))
	}
}

// Addr returns p's address, for Lines.
func Addr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// Ahead is the schedule of a loop over a batch of n items that, at the start of each group of
// group items, asks for the items dist groups ahead: it returns the items [from, to) to ask
// for at the group starting at k (a multiple of group). At k == 0 they are every item up to
// the end of that group, so that each item of the batch is asked for once.
func Ahead(k, n, group, dist int) (from, to int) {
	if k == 0 {
		return 0, min((dist+1)*group, n)
	}
	return min(k+dist*group, n), min(k+(dist+1)*group, n)
}
