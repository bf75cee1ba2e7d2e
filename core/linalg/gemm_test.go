package linalg

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
)

// TestPlan checks that the blocks of C tile it exactly, respect the block
// limits, and give every worker work.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		m, n, k, workers int
		minTasks         int
	}{
		{1024, 768, 3072, 2, 4},
		{1024, 8, 768, 2, 4},
		{8, 768, 1024, 2, 4},
		{1024, 768, 8, 4, 8},
		{64, 64, 64, 2, 2},
		{5, 5, 5, 2, 1},
		{1000, 1000, 1000, 1, 1},
	} {
		for _, tile := range [][2]int{{mr, nr}, {mr512, nr512}} {
			t.Run(fmt.Sprintf("%dx%dx%d/%d/%dx%d", tc.m, tc.n, tc.k, tc.workers, tile[0], tile[1]), func(t *testing.T) {
				g := &gemm{m: tc.m, n: tc.n, k: tc.k, mr: tile[0], nr: tile[1]}
				g.plan(tc.workers, 2, kcMax, mcMax512, ncMax)
				if g.mc%g.mr != 0 || g.nc%g.nr != 0 || g.mc > roundUp(mcMax512, g.mr) || g.nc > ncMax || g.kc > kcMax || g.kc < 1 {
					t.Fatalf("bad blocks mc=%d nc=%d kc=%d", g.mc, g.nc, g.kc)
				}
				if g.tm%g.mr != 0 || g.tn%g.nr != 0 {
					t.Fatalf("task %dx%d not a multiple of the tile", g.tm, g.tn)
				}
				if (g.rt-1)*g.tm >= tc.m || g.rt*g.tm < tc.m || (g.ct-1)*g.tn >= tc.n || g.ct*g.tn < tc.n {
					t.Fatalf("tasks %dx%d of %dx%d do not tile %dx%d", g.rt, g.ct, g.tm, g.tn, tc.m, tc.n)
				}
				if g.rt*g.ct < tc.minTasks {
					t.Fatalf("%d tasks for %d workers, want at least %d", g.rt*g.ct, tc.workers, tc.minTasks)
				}
			})
		}
	}
}

// TestParallelFor checks that every task runs exactly once, from one caller
// and from several at a time.
func TestParallelFor(t *testing.T) {
	helpers := poolSize() - 1
	for _, tasks := range []int{1, 2, 3, 17, 200} {
		counts := make([]atomic.Int32, tasks)
		parallelFor(tasks, helpers, func(task int, s *scratch) {
			if s == nil {
				t.Error("nil scratch")
			}
			counts[task].Add(1)
		})
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Fatalf("%d tasks: task %d ran %d times", tasks, i, c)
			}
		}
	}
}

func TestSetGeneric(t *testing.T) {
	was := SetGeneric(true)
	defer SetGeneric(was)
	if Accelerated() {
		t.Fatal("Accelerated after SetGeneric(true)")
	}
	if prev := SetGeneric(false); !prev {
		t.Fatal("SetGeneric did not return the previous setting")
	}
	if Accelerated() != hasAsm {
		t.Fatalf("Accelerated() = %v after SetGeneric(false), CPU support %v", Accelerated(), hasAsm)
	}
}

func TestParallelRanges(t *testing.T) {
	for _, tc := range []struct{ n, grain int }{{0, 1}, {1, 1}, {5, 10}, {100, 7}, {1000, 1}, {1 << 16, 4096}} {
		seen := make([]atomic.Int32, tc.n)
		ParallelRanges(tc.n, tc.grain, func(lo, hi int) {
			if hi-lo < min(tc.grain, tc.n) && hi != tc.n {
				t.Errorf("n=%d grain=%d: range [%d,%d) below the grain", tc.n, tc.grain, lo, hi)
			}
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Fatalf("n=%d grain=%d: item %d ran %d times", tc.n, tc.grain, i, c)
			}
		}
	}
}

// TestAsmPackers checks the assembly packers of the AVX-512 and AVX2 paths
// against the Go packing they replace, element for element, over depths
// that exercise their blocks of steps, their one-step tails and both
// together, and over operands placed at unaligned offsets.
func TestAsmPackers(t *testing.T) {
	for _, kern := range []struct {
		name   string
		mr, nr int
		has    bool
	}{{"avx512", mr512, nr512, hasAVX512}, {"avx2", mr, nr, hasAsm}} {
		t.Run(kern.name, func(t *testing.T) {
			if !kern.has {
				t.Skipf("no %s on this CPU: its packers are not used", kern.name)
			}
			testAsmPackers(t, kern.mr, kern.nr)
		})
	}
}

func testAsmPackers(t *testing.T, mr, nr int) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, tc := range []struct{ m, n, k, p0, kc int }{
		{24, 64, 7, 0, 7},
		{24, 64, 8, 0, 8},
		{24, 64, 9, 0, 9},
		{24, 64, 1, 0, 1},
		{24, 64, 15, 0, 15},
		{36, 96, 16, 0, 16},
		{24, 64, 17, 0, 17},
		{48, 160, 300, 44, 256},
		{60, 200, 777, 513, 264},
	} {
		name := fmt.Sprintf("%dx%dx%d@%d+%d", tc.m, tc.n, tc.k, tc.p0, tc.kc)
		a := randSlice(r, tc.m*tc.k+3)[3:] // unaligned
		bt := randSlice(r, tc.n*tc.k)
		bn := randSlice(r, tc.k*tc.n+1)[1:]
		for _, transB := range []bool{false, true} {
			b := bn
			if transB {
				b = bt
			}
			mk := func(asm bool) *gemm {
				return &gemm{transB: transB, m: tc.m, n: tc.n, k: tc.k, a: a, b: b, mr: mr, nr: nr, packAsm: asm}
			}
			ga, gg := mk(true), mk(false)
			rows := tc.m - 5 // a partial sliver at the end
			pa, pg := make([]float32, roundUp(rows, mr)*tc.kc), make([]float32, roundUp(rows, mr)*tc.kc)
			ga.packA(pa, 2, rows, tc.p0, tc.kc)
			gg.packA(pg, 2, rows, tc.p0, tc.kc)
			if !slices.Equal(pa, pg) {
				t.Errorf("%s: packA differs from the Go packing", name)
			}
			cols := tc.n - 7
			pa, pg = make([]float32, roundUp(cols, nr)*tc.kc), make([]float32, roundUp(cols, nr)*tc.kc)
			ga.packB(new(scratch), pa, 3, cols, tc.p0, tc.kc)
			gg.packB(new(scratch), pg, 3, cols, tc.p0, tc.kc)
			if !slices.Equal(pa, pg) {
				t.Errorf("%s transB=%v: packB differs from the Go packing", name, transB)
			}
		}
	}
}
