// Command fmapeak measures this CPU's peak float32 multiply-add rate: a
// loop of independent AVX-512 (or AVX2) FMAs on registers, with no memory
// access, on one goroutine and then on every core at once. No matrix
// product, in any library, runs faster than this; `make bench-scale`
// divides the TinyLlama step's floating-point work by it for the step's
// absolute floor. Where the CPU has AVX512-BF16 it also measures
// VDPBF16PS, whose multiply-adds take BF16 inputs (two per float32 lane),
// to show what BF16 dot products would and would not buy.
//
// Output lines are "RESULT name value unit", as torch_peer.py prints them.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"
)

func main() {
	iters := flag.Int("iters", 100_000_000, "loop iterations per goroutine (12 instructions each)")
	flag.Parse()
	loops := available()
	if len(loops) == 0 {
		fmt.Fprintln(os.Stderr, "fmapeak: no FMA loop for this CPU")
		os.Exit(1)
	}
	for _, l := range loops {
		// One goroutine, then one per core: the last line is the machine's.
		for _, threads := range slices.Compact([]int{1, runtime.GOMAXPROCS(0)}) {
			best := 0.0
			for range 3 {
				best = max(best, rate(l, threads, *iters))
			}
			fmt.Printf("RESULT %s/threads-%d %.1f %s\n", l.name, threads, best, l.unit)
		}
	}
}

// loop is one register-only instruction loop: run executes n iterations
// of 12 instructions, each doing perInstr of the unit's operations.
type loop struct {
	name     string
	unit     string
	perInstr float64
	run      func(n int)
}

// rate runs l on threads goroutines at once and returns the operations per
// second of all of them, in billions.
func rate(l loop, threads, n int) float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for range threads {
		wg.Go(func() { l.run(n) })
	}
	wg.Wait()
	return float64(threads) * float64(n) * 12 * l.perInstr / time.Since(t0).Seconds() / 1e9
}
