package ops

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/mat"

	"github.com/surgeon-ml/surgeon/core/vmem"
)

// TestPooledBuffersReuse runs the same training step many times: the
// first from an empty pool, the others from buffers that earlier steps gave
// back dirty. Every gradient must be bit-identical, and the pool must have
// been used, so that a step that read a reused buffer without clearing it,
// or that recycled a buffer something still refers to, shows up; and the
// live heap must not grow from step to step.
func TestPooledBuffersReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const n, d, T = 64, 64, 16
	lay := Layout{Batch: n / T, Len: T}
	x := randParam(r, n, d, 1)
	x.SetRequiresGrad(false)
	w1, b1 := randParam(r, 2*d, d, 0.2), randParam(r, 1, 2*d, 0.1)
	g := randParam(r, 1, d, 1)
	lw, lb := randParam(r, 1, d, 1), randParam(r, 1, d, 0.1)
	w2, a2, bb2 := randParam(r, 32, d, 0.2), randParam(r, 4, d, 0.2), randParam(r, 32, 4, 0.2)
	wkv := randParam(r, d/2, d, 0.2)
	params := []*mat.Dense[float32]{w1, b1, g, lw, lb, w2, a2, bb2, wkv}
	targets := make([]int, n)
	for i := range targets {
		targets[i] = r.IntN(32)
	}
	targets[5] = -1 // an ignored position: its row of the gradient stays 0
	step := func() [][]float32 {
		for _, p := range params {
			p.ZeroGrad()
		}
		h := Linear(x, w1, b1)                                     // [n, 2d]
		gate, up := Transpose(h), h                                // exercise more ops
		s := SwiGLU(Transpose(gate), up)                           // [n, 2d]
		q := RMSNorm(MatMul(s, w1), g, 1e-6)                       // [n, d]
		a := Attention(q, q, q, lay, 8, 8, true)                   // heads of 8
		kv := Linear(q, wkv, nil)                                  // [n, d/2]
		a = Add(a, Attention(q, kv, kv, lay, 2, 1, false))         // heads of 32, grouped
		a = GELU(LayerNorm(a, lw, lb, 1e-5))                       //
		y := LoRA(a, w2, nil, a2, bb2, 2, nil)                     // [n, 32]
		if err := Backward(CrossEntropy(y, targets)); err != nil { //
			t.Fatal(err)
		}
		var grads [][]float32
		for _, p := range params {
			grads = append(grads, append([]float32(nil), Data(p.Grad())...))
		}
		return grads
	}
	defer func(was bool) { poisonRecycled = was }(poisonRecycled)
	poisonRecycled = true
	FreeBuffers()
	first := step()
	if pooledBuffers() == 0 {
		t.Fatal("a backward pass gave nothing back to the pool")
	}
	var ms runtime.MemStats
	var heapAt5 uint64
	for rep := 1; rep < 40; rep++ {
		if rep == 5 || rep == 39 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if rep == 5 {
				heapAt5 = ms.HeapAlloc
			} else if ms.HeapAlloc > heapAt5+heapAt5/10+1<<20 {
				t.Errorf("live heap grew from %d to %d bytes between steps 5 and 39", heapAt5, ms.HeapAlloc)
			}
		}
		got := step()
		for i := range got {
			for j := range got[i] {
				if got[i][j] != first[i][j] {
					t.Fatalf("step %d: gradient of parameter %d differs at %d: %v, first step %v", rep, i, j, got[i][j], first[i][j])
				}
			}
		}
	}
}

func TestRecycleKeepsOnlyOwnedWholeBuffers(t *testing.T) {
	FreeBuffers()
	defer FreeBuffers()
	big := make([]float32, 2*minPooled)
	recycle(big[10 : 10+minPooled]) // inside a larger buffer: not taken
	recycle(make([]float32, 10))    // too small to pool
	recycle(make([]float32, 1500))  // not a size class
	if got := pooledBuffers(); got != 0 {
		t.Fatalf("pool holds %d floats, want 0", got)
	}
	b := allocDirty(1500)
	if len(b) != 1500 || cap(b) != sizeClass(1500) {
		t.Fatalf("allocDirty(1500): len %d cap %d, want 1500 and %d", len(b), cap(b), sizeClass(1500))
	}
	for i := range b {
		b[i] = 7
	}
	recycle(b)
	c := alloc(1530) // the same class
	if &c[0] != &b[0] || len(c) != 1530 {
		t.Fatal("alloc did not reuse the recycled buffer of its class")
	}
	for i, v := range c[:cap(c)] {
		if v != 0 && i < len(c) {
			t.Fatalf("reused buffer not cleared: element %d is %v", i, v)
		}
	}
}

func TestSizeClass(t *testing.T) {
	for n := 1; n < 1<<20; n += 1 + n/97 {
		c := sizeClass(n)
		if c < n || float64(c) > float64(n)*1.126+1 || sizeClass(c) != c {
			t.Fatalf("sizeClass(%d) = %d", n, c)
		}
	}
}

func TestPoolStaysBounded(t *testing.T) {
	FreeBuffers()
	defer FreeBuffers()
	for n := minPooled; n < defaultPoolLimit/4; n = n*5/4 + 1 {
		recycle(make([]float32, n, sizeClass(n)), make([]float32, n, sizeClass(n)))
		if h := pooledBuffers(); h > defaultPoolLimit {
			t.Fatalf("pool holds %d floats, more than %d", h, defaultPoolLimit)
		}
	}
}

// poolLimit returns the pool's limit in floats.
func poolLimit() int64 {
	bufs.Lock()
	defer bufs.Unlock()
	return int64(bufs.limit)
}

// TestPoolLimit checks that SetPoolLimit lets the pool keep more than the
// default, still within the new limit, and never less than the default.
func TestPoolLimit(t *testing.T) {
	FreeBuffers()
	defer FreeBuffers()
	for _, c := range []struct {
		bytes, want int64 // limit asked for, limit in floats
	}{
		{1 << 30, 1 << 28},
		{1 << 20, defaultPoolLimit}, // below the default: the default
		{0, defaultPoolLimit},
	} {
		was := SetPoolLimit(c.bytes)
		if got := poolLimit(); got != c.want {
			t.Errorf("SetPoolLimit(%d): limit %d floats, want %d", c.bytes, got, c.want)
		}
		FreeBuffers()
		n := sizeClass(1 << 22)
		for range 2 * c.want / int64(n) {
			recycle(make([]float32, n))
		}
		if h := int64(pooledBuffers()); h > c.want || h < c.want-int64(n) {
			t.Errorf("limit %d floats: the pool holds %d", c.want, h)
		}
		SetPoolLimit(was)
	}
	if got := poolLimit(); got != defaultPoolLimit {
		t.Errorf("limit after restoring: %d floats, want %d", got, defaultPoolLimit)
	}
}

// TestBackwardRecyclesIntermediateOutputs checks that Backward gives the
// outputs of the operators inside the graph back to the pool (poisoned
// here, so a reader would see NaN) and leaves the root's output alone.
func TestBackwardRecyclesIntermediateOutputs(t *testing.T) {
	defer func(was bool) { poisonRecycled = was }(poisonRecycled)
	poisonRecycled = true
	r := rand.New(rand.NewPCG(3, 4))
	const n, d = 64, 32
	x := randParam(r, n, d, 1)
	x.SetRequiresGrad(false)
	w1, w2 := randParam(r, d, d, 0.2), randParam(r, d, d, 0.2)
	h := Linear(x, w1, nil) // n*d = 2048 floats, a pooled size
	y := Linear(h, w2, nil)
	before := append([]float32(nil), Data(y)...)
	if err := Backward(y); err != nil {
		t.Fatal(err)
	}
	for i, v := range Data(y) {
		if v != before[i] {
			t.Fatalf("root output changed by Backward at %d: %v, was %v", i, v, before[i])
		}
	}
	if v := Data(h)[0]; !math.IsNaN(float64(v)) {
		t.Errorf("intermediate output not recycled by Backward: %v", v)
	}
	if w1.Grad() == nil || w2.Grad() == nil {
		t.Errorf("gradients missing")
	}
}

// TestArenaRecyclesBlockOutputs checks that a checkpointed block's forward
// gives the outputs of its operators back to the pool and no other buffer:
// neither its input nor the copy of its output, which stay intact (the
// pool poisons what it takes back).
func TestArenaRecyclesBlockOutputs(t *testing.T) {
	defer func(was bool) { poisonRecycled = was }(poisonRecycled)
	poisonRecycled = true
	FreeBuffers()
	defer FreeBuffers()
	const n = 4 * minPooled
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = float32(i % 7)
	}
	x := New(1, n, xs)
	block := func(x mat.Tensor) mat.Tensor { return Add(Add(x, x), x) } // two pooled outputs
	c := &checkpointFn{x: x, f: block}
	y, err := c.Forward()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pooledBuffers(), 2*sizeClass(n); got != want {
		t.Errorf("the pool holds %d floats after the block, want its two outputs' %d", got, want)
	}
	for i, v := range Data(y) {
		if v != 3*xs[i] || xs[i] != float32(i%7) {
			t.Fatalf("element %d: output %v, input %v; want %v, %v", i, v, xs[i], 3*float32(i%7), float32(i%7))
		}
	}
	if arena.open.Load() || len(arena.bufs) != 0 {
		t.Fatal("the arena is still open or holds buffers")
	}
}

// TestPoolHugePages checks that new large pooled buffers ask for huge
// pages only while a runner has raised the pool's limit, and that the
// system records the advice.
func TestPoolHugePages(t *testing.T) {
	FreeBuffers()
	defer FreeBuffers()
	var advised [][]float32
	defer func(f func([]float32)) { adviseHuge = f }(adviseHuge)
	adviseHuge = func(s []float32) { advised = append(advised, s) }
	allocDirty(3 * minHuge)
	allocDirty(minHuge / 2)
	if len(advised) != 0 {
		t.Fatalf("default limit: %d buffers advised, want none", len(advised))
	}
	defer SetPoolLimit(SetPoolLimit(1 << 30))
	allocDirty(minHuge / 2)
	big := allocDirty(3 * minHuge)
	if len(advised) != 1 || &advised[0][0] != &big[0] || len(advised[0]) != cap(big) {
		t.Fatalf("raised limit: %d buffers advised, want the large one whole", len(advised))
	}
	if !vmem.HasTHP() {
		return // nothing for the system to record
	}
	adviseHuge = vmem.AdviseHuge
	big = allocDirty(3 * minHuge)
	if ok, err := vmem.HugeAdvised(big); err != nil || !ok {
		t.Fatalf("raised limit: the system has advised %v, %v; want true", ok, err)
	}
}
