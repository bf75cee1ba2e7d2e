package linalg

// The matrix products share one blocked Sgemm in the manner of GotoBLAS and
// BLIS. C is cut into a few tasks (row and column ranges), one or two per
// worker. A task walks its columns in panels of at most nc and k in slabs of
// at most kc; it packs each kc x nc slab of B once into slivers of nr columns
// (zero padded, whatever the source layout), then walks its rows in blocks of
// at most mc, packs each block of A into slivers of mr rows, and runs the
// mr x nr micro-kernel over every pair of slivers. A packed B sliver stays in
// L1 while the A slivers stream from L2, where the packed A block fits with
// room to spare; the packed B slab is reused by every row block of the task.
// The AVX-512 path packs full slivers in assembly: rows of the source are
// loaded a cache line at a time and transposed in registers where the
// packed layout crosses them, with the lines ahead (and the head of the
// next sliver) prefetched, since the operands usually come from L3.
const (
	mr    = 6  // rows of an AVX2 (and generic) micro-tile; asmgen's mr must match
	nr    = 16 // columns of an AVX2 micro-tile; asmgen's nr must match
	mr512 = 12 // rows of an AVX-512 micro-tile; asmgen's mr512 must match
	nr512 = 32 // columns of an AVX-512 micro-tile; asmgen's nr512 must match

	// nrNarrow is the width of the narrow AVX2 micro-tile (12 x 8, one YMM
	// register a row), for products of at most 8 columns: the thin ones of
	// attention heads and LoRA factors, where a 16-column tile would be
	// half empty. mrNarrow is its height; asmgen's must match.
	nrNarrow = 8
	mrNarrow = 12
	kcMax    = 256  // depth of a packed slab
	mcMax    = 168  // rows of a block of A, a multiple of mr
	ncMax    = 4080 // columns of a panel of B, a multiple of nr

	// Blocking of the AVX-512 kernel: a B sliver (kc*32 floats, 32 KiB)
	// stays in L1; a block of A (mc*kc) in L2; a panel of B (kc*nc, up to
	// 4 MiB) in L3, wide enough that the usual products pack A only once.
	kcMax512 = 256
	mcMax512 = 192
	ncMax512 = 4096

	// maxTile is the size of the largest micro-tile, for edge tiles.
	maxTile = mr512 * nr512

	// minParallelWork is the number of multiply-adds below which a product
	// runs on the calling goroutine: waking workers costs more than it saves.
	minParallelWork = 1 << 21

	// maxDirectSlivers is the most slivers of the other operand for which
	// an operand is read in place rather than packed.
	maxDirectSlivers = 2

	// maxDirectWork is the number of multiply-adds up to which a product
	// reads both operands in place wherever their layout allows: they fit
	// in L1, and packing them would cost about as much as the product.
	maxDirectWork = 1 << 16

	// maxDotSide is the largest m or n for which a product with B stored
	// [n,k] is computed as dot products instead (and m, with B stored [k,n],
	// for row updates): the other operand is read once, in place, where
	// packing it would cost more than the product. The portable kernel wastes
	// more on a padded tile, so the generic path goes that way up to nr.
	maxDotSide        = 4
	maxDotSideGeneric = nr

	// Smallest blocks that a split for parallelism may produce.
	minSplitRows = 4 * mr
	minSplitCols = 4 * nr
)

// kernel computes one mr x nr tile of C (+)= A*B from k steps of packed A and
// B; c has row stride ldc.
type kernel func(k int, a, b, c []float32, ldc int, accum bool)

// gemm holds one product C[m,n] (+)= op(A)[m,k] * op(B)[k,n] and its blocking.
type gemm struct {
	// transA: A is stored [k,m]; otherwise [m,k]. transB: B is stored
	// [n,k]; otherwise [k,n]. All row-major.
	transA, transB bool
	m, n, k        int
	a, b, c        []float32
	acc            bool
	// bsrc, when set, supplies B in an encoded form, decoded as it is
	// packed (MatMulNTSource, MatMulNNSource); b is then unused.
	bsrc RowSource

	kern    kernel
	mr, nr  int  // the kernel's tile
	strided bool // the AVX2 kernels: operands may be read in place
	// skern is the kernel for operands read in place, when strided.
	skern func(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool)

	// packAsm: full slivers are packed by the kernel's assembly packers.
	packAsm bool

	mc, nc, kc int // block sizes: mc a multiple of mr, nc of nr
	tm, tn     int // rows and columns of a task: multiples of mc and nc, or all
	rt, ct     int // number of row and column tasks
}

// use512 reports whether a product of this shape goes to the AVX-512
// kernel: one large enough that its wider tiles are mostly full, however
// shallow. Shallow products (attention scores over 8-wide heads, the second
// LoRA factor) gain the most: with k = 8 a tile costs more to set up and
// store than to compute, and the 12x32 tile needs a quarter as many.
func use512(m, n int) bool {
	return useAVX512() && m >= 2*mr512 && n >= 2*nr512
}

// sgemm computes C[m,n] = op(A)*op(B), adding into C when acc is true.
func sgemm(transA, transB bool, m, n, k int, a, b, c []float32, acc bool) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 {
		if !acc {
			clear(c[:m*n])
		}
		return
	}
	// A single column or row is stored the same either way round.
	if n == 1 {
		transB = true
	}
	if m == 1 {
		transA = false
	}
	dotSide := maxDotSideGeneric
	if useAsm() {
		dotSide = maxDotSide
	}
	if transB && !transA && min(m, n) <= dotSide {
		sgemmDots(m, n, k, a, b, c, acc)
		return
	}
	if !transB && m <= dotSide {
		sgemmAxpys(transA, m, n, k, a, b, c, acc)
		return
	}
	// On the stack: the products of attention heads and other small ones
	// are many and short, and a heap allocation each would show. Only
	// products shared with the workers get a heap copy.
	g := &gemm{transA: transA, transB: transB, m: m, n: n, k: k, a: a, b: b, c: c, acc: acc,
		kern: gemmKernelGeneric, mr: mr, nr: nr}
	kc, mc, nc := kcMax, mcMax, ncMax
	switch {
	case use512(m, n):
		g.kern, g.skern, g.mr, g.nr, g.strided = gemmKernel512Asm, gemmKernel512StridedAsm, mr512, nr512, true
		kc, mc, nc = kcMax512, mcMax512, ncMax512
		g.packAsm = true
	case useAsm() && n <= nrNarrow:
		g.kern, g.skern, g.mr, g.nr, g.strided = gemmKernelNarrowAsm, gemmKernelNarrowStridedAsm, mrNarrow, nrNarrow, true
	case useAsm():
		g.kern, g.skern, g.strided, g.packAsm = gemmKernelAsm, gemmKernelStridedAsm, true, true
	}
	g.run(kc, mc, nc)
}

// run plans g's tasks with block limits kc, mc and nc and runs them, on
// the workers when the product is large enough.
func (g *gemm) run(kc, mc, nc int) {
	workers := 1
	if g.m*g.n*g.k >= minParallelWork {
		workers = poolSize()
	}
	// Large products get one task per worker: each packs its own share of
	// the operands, with no data crossing between cores and nothing to wait
	// for. (Sharing one packed B among the workers, GotoBLAS style, measured
	// 10-20% slower on two cores than two independent halves.) Smaller ones
	// get two per worker, so that one finishing early can take over work.
	perWorker := 2
	if g.nr == nr512 {
		perWorker = 1
	}
	g.plan(workers, perWorker, kc, mc, nc)
	tasks := g.rt * g.ct
	if workers == 1 || tasks == 1 {
		s := scratchPool.Get().(*scratch)
		for t := range tasks {
			g.task(t, s)
		}
		scratchPool.Put(s)
		return
	}
	shared := new(gemm)
	*shared = *g
	parallelFor(tasks, workers-1, shared.task)
}

// sgemmDots computes C[m,n] (+)= A[m,k] * B[n,k]^T one dot product at a
// time, for shapes with m or n at most a few: matrix-vector products
// and their near kin. The few rows of the small operand stay in L1 while
// the large one streams through once; its rows are split among the workers.
func sgemmDots(m, n, k int, a, b, c []float32, acc bool) {
	asm := useAsm()
	long := max(m, n)
	rows := func(lo, hi int) {
		for r := lo; r < hi; r++ {
			for q := range min(m, n) {
				i, j := r, q
				if m < n {
					i, j = q, r
				}
				var s float32
				if asm {
					s = dotAVX2(a[i*k:(i+1)*k], b[j*k:(j+1)*k])
				} else {
					s = dotGeneric(a[i*k:(i+1)*k], b[j*k:(j+1)*k])
				}
				if acc {
					c[i*n+j] += s
				} else {
					c[i*n+j] = s
				}
			}
		}
	}
	workers := 1
	if m*n*k >= minParallelWork {
		workers = poolSize()
	}
	if workers == 1 {
		rows(0, long)
		return
	}
	tasks := min(4*workers, ceilDiv(long, minSplitRows))
	chunk := ceilDiv(long, tasks)
	parallelFor(ceilDiv(long, chunk), workers-1, func(t int, _ *scratch) {
		rows(t*chunk, min((t+1)*chunk, long))
	})
}

// sgemmAxpys computes C[m,n] (+)= op(A)[m,k] * B[k,n] as scaled row
// additions, for m at most a few: each row of B is read once, in place,
// and added into the few rows of C. The columns are split among the workers.
func sgemmAxpys(transA bool, m, n, k int, a, b, c []float32, acc bool) {
	asm := useAsm()
	cols := func(lo, hi int) {
		if !acc {
			for i := range m {
				clear(c[i*n+lo : i*n+hi])
			}
		}
		for p := range k {
			bp := b[p*n+lo : p*n+hi]
			for i := range m {
				var av float32
				if transA {
					av = a[p*m+i]
				} else {
					av = a[i*k+p]
				}
				if asm {
					axpyAVX2(av, bp, c[i*n+lo:i*n+hi])
				} else {
					axpyGeneric(av, bp, c[i*n+lo:i*n+hi])
				}
			}
		}
	}
	workers := 1
	if m*n*k >= minParallelWork {
		workers = poolSize()
	}
	if workers == 1 {
		cols(0, n)
		return
	}
	// One long stretch of columns per worker: short ones would turn the
	// row reads of B into strided ones.
	tasks := min(workers, ceilDiv(n, 4*minSplitCols))
	chunk := roundUp(ceilDiv(n, tasks), nr)
	parallelFor(ceilDiv(n, chunk), workers-1, func(t int, _ *scratch) {
		cols(t*chunk, min((t+1)*chunk, n))
	})
}

// plan picks the block sizes and the tasks. With several workers it makes
// at least perWorker tasks per worker, a multiple of their number when it
// can, so that they finish together. It splits the columns when A is the smaller
// operand and the rows otherwise: each column task packs all of A again and
// each row task all of B, so the split repacks the smaller one.
func (g *gemm) plan(workers, perWorker, kcm, mcm, ncm int) {
	g.kc = ceilDiv(g.k, ceilDiv(g.k, kcm))
	rt, ct := 1, 1
	minRows, minCols := max(minSplitRows, 2*g.mr), max(minSplitCols, 2*g.nr)
	for workers > 1 && (rt*ct < perWorker*workers || rt*ct%workers != 0) {
		canRow := g.m/(rt+1) >= minRows
		canCol := g.n/(ct+1) >= minCols
		switch {
		case canCol && (!canRow || g.m <= g.n):
			ct++
		case canRow:
			rt++
		default:
			workers = 1 // cannot split further
		}
	}
	g.tm = roundUp(ceilDiv(g.m, rt), g.mr)
	g.tn = roundUp(ceilDiv(g.n, ct), g.nr)
	g.rt, g.ct = ceilDiv(g.m, g.tm), ceilDiv(g.n, g.tn)
	// Blocks as even as the limits allow within a task.
	g.mc = roundUp(ceilDiv(g.tm, ceilDiv(g.tm, mcm)), g.mr)
	g.nc = roundUp(ceilDiv(g.tn, ceilDiv(g.tn, ncm)), g.nr)
}

// task computes task t of C, row-task-major.
//
// With the AVX2 kernels, an operand that the task would read only once or
// twice is not packed but read in place, where its layout allows: A (either
// layout) when a panel has at most maxDirectSlivers column slivers, B stored
// [k,n] when a block has at most that many row slivers. Only the partial
// sliver at the edge, if any, is still packed.
func (g *gemm) task(t int, s *scratch) {
	ti0, tj0 := t/g.ct*g.tm, t%g.ct*g.tn
	trows, tcols := min(g.tm, g.m-ti0), min(g.tn, g.n-tj0)
	mr, nr := g.mr, g.nr
	pa, pb := s.buffers(roundUp(min(g.mc, trows), mr)*g.kc, roundUp(min(g.nc, tcols), nr)*g.kc)
	for j0 := tj0; j0 < tj0+tcols; j0 += g.nc {
		cols := min(g.nc, tj0+tcols-j0)
		fullCols := cols / nr * nr
		small := g.m*g.n*g.k <= maxDirectWork
		directA := g.strided && (small || ceilDiv(cols, nr) <= maxDirectSlivers)
		for p0 := 0; p0 < g.k; p0 += g.kc {
			kc := min(g.kc, g.k-p0)
			accum := g.acc || p0 > 0
			packedB := false
			for i0 := ti0; i0 < ti0+trows; i0 += g.mc {
				rows := min(g.mc, ti0+trows-i0)
				fullRows := rows / mr * mr
				directB := g.strided && !g.transB && g.bsrc == nil && (small || ceilDiv(rows, mr) <= maxDirectSlivers)
				if !directA {
					g.packA(pa, i0, rows, p0, kc)
				} else if fullRows < rows {
					g.packA(pa[fullRows*kc:], i0+fullRows, rows-fullRows, p0, kc)
				}
				switch {
				case packedB: // packed for an earlier block
				case !directB:
					g.packB(s, pb, j0, cols, p0, kc)
					packedB = true
				case fullCols < cols:
					g.packB(s, pb[fullCols*kc:], j0+fullCols, cols-fullCols, p0, kc)
				}
				g.macro(s, pa, pb, i0, j0, rows, cols, p0, kc, accum, directA, directB && !packedB)
			}
		}
	}
}

// macro runs the micro-kernel over the rows x cols block of C at (i0, j0)
// for the slab p0:p0+kc, from the packed block pa of A and panel pb of B, or
// from A or B in place where directA or directB say so.
func (g *gemm) macro(s *scratch, pa, pb []float32, i0, j0, rows, cols, p0, kc int, accum, directA, directB bool) {
	mr, nr, n := g.mr, g.nr, g.n
	for jr := 0; jr < cols; jr += nr {
		nrr := min(nr, cols-jr)
		bs, ldb := pb[jr*kc:(jr+nr)*kc], nr
		if directB && nrr == nr {
			bs, ldb = g.b[p0*n+j0+jr:], n
		}
		for ir := 0; ir < rows; ir += mr {
			mrr := min(mr, rows-ir)
			as, rsa, csa := pa[ir*kc:(ir+mr)*kc], 1, mr
			if directA && mrr == mr {
				if g.transA {
					as, rsa, csa = g.a[p0*g.m+i0+ir:], 1, g.m
				} else {
					as, rsa, csa = g.a[(i0+ir)*g.k+p0:], g.k, 1
				}
			}
			cs, ldc, full := g.c[(i0+ir)*n+j0+jr:], n, mrr == mr && nrr == nr
			if !full {
				cs, ldc = s.tile[:mr*nr], nr
			}
			if rsa == 1 && csa == mr && ldb == nr {
				g.kern(kc, as, bs, cs, ldc, accum && full)
			} else {
				g.skern(kc, as, rsa, csa, bs, ldb, cs, ldc, accum && full)
			}
			if !full {
				mergeTile(g.c[(i0+ir)*n+j0+jr:], n, s.tile[:mr*nr], nr, mrr, nrr, accum)
			}
		}
	}
}

// mergeTile stores or adds the top-left rows x cols of an edge tile (row
// stride tn) into C.
func mergeTile(c []float32, ldc int, t []float32, tn, rows, cols int, accum bool) {
	for i := range rows {
		ci := c[i*ldc : i*ldc+cols]
		ti := t[i*tn : i*tn+cols]
		if accum {
			for j, v := range ti {
				ci[j] += v
			}
		} else {
			copy(ci, ti)
		}
	}
}

// packA copies op(A)[i0:i0+rows, p0:p0+kc] into dst as slivers of mr rows,
// each kc steps of mr floats, padding the last sliver with zeros.
func (g *gemm) packA(dst []float32, i0, rows, p0, kc int) {
	a, mr := g.a, g.mr
	for s := 0; s*mr < rows; s++ {
		r0 := i0 + s*mr
		h := min(mr, rows-s*mr)
		d := dst[s*mr*kc : (s+1)*mr*kc]
		switch {
		case g.transA: // element (i,p) at a[p*m+i]
			lda := g.m
			for p := range kc {
				src := a[(p0+p)*lda+r0 : (p0+p)*lda+r0+h]
				dp := d[p*mr : p*mr+mr]
				switch {
				case h == mr512 && mr == mr512:
					*(*[mr512]float32)(dp) = *(*[mr512]float32)(src)
				case h == mr && mr == 6:
					*(*[6]float32)(dp) = *(*[6]float32)(src)
				default: // an edge sliver: a few floats, not worth a call to memmove
					for i, v := range src {
						dp[i] = v
					}
					for i := h; i < mr; i++ {
						dp[i] = 0
					}
				}
			}
		case h == mr && g.packAsm:
			packTAsm(d, a[r0*g.k+p0:], g.k, kc, mr)
		case h == mr: // element (i,p) at a[i*k+p], six rows at a time
			lda := g.k
			for i := 0; i < mr; i += 6 {
				a0 := a[(r0+i+0)*lda+p0 : (r0+i+0)*lda+p0+kc]
				a1 := a[(r0+i+1)*lda+p0 : (r0+i+1)*lda+p0+kc]
				a2 := a[(r0+i+2)*lda+p0 : (r0+i+2)*lda+p0+kc]
				a3 := a[(r0+i+3)*lda+p0 : (r0+i+3)*lda+p0+kc]
				a4 := a[(r0+i+4)*lda+p0 : (r0+i+4)*lda+p0+kc]
				a5 := a[(r0+i+5)*lda+p0 : (r0+i+5)*lda+p0+kc]
				for p := range a0 {
					dp := (*[6]float32)(d[p*mr+i : p*mr+i+6])
					dp[0], dp[1], dp[2], dp[3], dp[4], dp[5] = a0[p], a1[p], a2[p], a3[p], a4[p], a5[p]
				}
			}
		default:
			lda := g.k
			clear(d)
			for i := range h {
				src := a[(r0+i)*lda+p0 : (r0+i)*lda+p0+kc]
				for p, v := range src {
					d[p*mr+i] = v
				}
			}
		}
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+cols] into dst as slivers of nr
// columns, each kc steps of nr floats, padding the last sliver with zeros.
// s is the worker's scratch.
func (g *gemm) packB(s *scratch, dst []float32, j0, cols, p0, kc int) {
	if g.bsrc != nil {
		g.packBSource(s, dst, j0, cols, p0, kc)
		return
	}
	b, nr := g.b, g.nr
	if !g.transB {
		// Row by row of B, so that the reads stream along its rows; each
		// row scatters into the full slivers, then the edge one if any.
		full, w := cols/nr, cols%nr
		ldb := g.n
		asm := g.packAsm && full > 0
		if asm {
			packBAsm(dst, b[p0*ldb+j0:], ldb, kc, full, nr)
			if w == 0 {
				return
			}
		}
		for p := range kc {
			row := b[(p0+p)*ldb+j0 : (p0+p)*ldb+j0+cols]
			if !asm {
				for s := range full {
					copy(dst[(s*kc+p)*nr:(s*kc+p+1)*nr], row[s*nr:(s+1)*nr])
				}
			}
			if w > 0 {
				dp := dst[(full*kc+p)*nr : (full*kc+p+1)*nr]
				copy(dp, row[full*nr:])
				clear(dp[w:])
			}
		}
		return
	}
	for s := 0; s*nr < cols; s++ {
		c0 := j0 + s*nr
		w := min(nr, cols-s*nr)
		d := dst[s*nr*kc : (s+1)*nr*kc]
		switch {
		case w == nr && g.packAsm:
			packTAsm(d, b[c0*g.k+p0:], g.k, kc, nr)
		case w == nr: // element (p,j) at b[j*k+p], four columns at a time
			ldb := g.k
			for j := 0; j < nr; j += 4 {
				b0 := b[(c0+j+0)*ldb+p0 : (c0+j+0)*ldb+p0+kc]
				b1 := b[(c0+j+1)*ldb+p0 : (c0+j+1)*ldb+p0+kc]
				b2 := b[(c0+j+2)*ldb+p0 : (c0+j+2)*ldb+p0+kc]
				b3 := b[(c0+j+3)*ldb+p0 : (c0+j+3)*ldb+p0+kc]
				for p := range b0 {
					dp := (*[4]float32)(d[p*nr+j : p*nr+j+4])
					dp[0], dp[1], dp[2], dp[3] = b0[p], b1[p], b2[p], b3[p]
				}
			}
		default:
			ldb := g.k
			clear(d)
			for j := range w {
				src := b[(c0+j)*ldb+p0 : (c0+j)*ldb+p0+kc]
				for p, v := range src {
					d[p*nr+j] = v
				}
			}
		}
	}
}

// gemmKernelGeneric is the portable micro-kernel: the mr x nr tile in 3x2
// register blocks, each a pass over the packed slivers. Blocks of that size
// keep accumulators and operands in the 16 XMM registers of amd64, where
// larger ones spill.
func gemmKernelGeneric(k int, a, b, c []float32, ldc int, accum bool) {
	a, b = a[:k*mr], b[:k*nr]
	var t [mr * nr]float32
	for i := 0; i < mr; i += 3 {
		for j := 0; j < nr; j += 2 {
			var c00, c01, c10, c11, c20, c21 float32
			for pa, pb := i, j; pb < len(b); pa, pb = pa+mr, pb+nr {
				ap := (*[3]float32)(a[pa : pa+3])
				bp := (*[2]float32)(b[pb : pb+2])
				b0, b1 := bp[0], bp[1]
				a0, a1, a2 := ap[0], ap[1], ap[2]
				c00 += a0 * b0
				c01 += a0 * b1
				c10 += a1 * b0
				c11 += a1 * b1
				c20 += a2 * b0
				c21 += a2 * b1
			}
			t[i*nr+j], t[i*nr+j+1] = c00, c01
			t[(i+1)*nr+j], t[(i+1)*nr+j+1] = c10, c11
			t[(i+2)*nr+j], t[(i+2)*nr+j+1] = c20, c21
		}
	}
	mergeTile(c, ldc, t[:], nr, mr, nr, accum)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
